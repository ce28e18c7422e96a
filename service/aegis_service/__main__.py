"""``python -m aegis_service``: exit 0 on clean shutdown, 1 on a startup/runtime failure, 2 on bad config.

``python -m aegis_service migrate up|down [--steps N]`` applies or reverts the schema migrations."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:
        from aegis_service.migrations.cli import main as migrate

        return migrate(args[1:])

    from aegis_service.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"aegis-service: configuration error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG

    from aegis_service.app import ServiceApp
    from aegis_service.logs import configure_logging

    configure_logging(settings.log_level, settings.instance_id)
    try:
        return _run(ServiceApp(settings).run())
    except KeyboardInterrupt:  # a signal that arrived before handlers were installed
        return 130


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (the ``service`` extra brings it), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    sys.exit(main())
