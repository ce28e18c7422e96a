"""Alembic, run the way its users run it: in a process of its own, from the directory of
``alembic.ini``, with the target database given as the ``sqlalchemy.url`` main option (SQLAlchemy
form, psycopg driver), so a stock ``env.py`` works unchanged, and its ``fileConfig`` logging set-up
and model imports stay out of the pytest process.

The parent (:func:`run`) passes the database's DSN in ``AEGIS_ALEMBIC_URL`` (never on the command
line) and reads the last line of stdout; in the child (``python -m
pytest_aegis.postgres.alembic_runner upgrade|roundtrip INI``) Alembic and SQLAlchemy are imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_aegis.errors import MigrationError
from pytest_aegis.postgres.migrations import ALEMBIC_HINT
from pytest_aegis.postgres.roundtrip import Steps, run_roundtrip

URL_VARIABLE = "AEGIS_ALEMBIC_URL"
IGNORE_VARIABLE = "AEGIS_ALEMBIC_IGNORE"
#: Seconds a whole Alembic run may take (a round trip is every step twice).
TIMEOUT = 300.0


def run(command: str, ini: Path, dsn: str, ignore: tuple[str, ...] = ()) -> str:
    """Run ``command`` (``upgrade`` or ``roundtrip``) for ``ini`` against ``dsn``; its last stdout
    line.  :class:`MigrationError` with Alembic's last output lines when it fails."""
    if not ini.is_file():
        raise MigrationError(f"aegis_pg_migrations: no Alembic config at {ini}")
    env = {**os.environ, URL_VARIABLE: dsn, IGNORE_VARIABLE: ",".join(ignore)}
    argv = [sys.executable, "-m", __name__, command, str(ini)]
    try:
        done = subprocess.run(
            argv, cwd=ini.parent, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        tail = _tail(exc.stderr if isinstance(exc.stderr, str) else "")
        raise MigrationError(
            f"alembic {command} ({ini}) did not finish within {TIMEOUT:.0f}s; its last output:\n{tail}\n"
            "hint: a migration waiting on a lock, or env.py connecting somewhere else"
        ) from None
    if done.returncode != 0:
        raise MigrationError(
            f"alembic {command} ({ini}) failed (exit {done.returncode}):\n{_tail(done.stderr)}"
        )
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _tail(text: str, count: int = 20) -> str:
    return "\n".join(f"  {line}" for line in text.strip().splitlines()[-count:]) or "  (nothing)"


# -- in the child -------------------------------------------------------------------


def sqlalchemy_url(dsn: str) -> str:
    """``dsn`` (a libpq URL or key=value string) as a SQLAlchemy URL with the psycopg 3 driver."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    parts = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
    port = parts.pop("port", None)
    url = URL.create(
        "postgresql+psycopg",
        username=parts.pop("user", None),
        password=parts.pop("password", None),
        host=parts.pop("host", None),
        port=int(port) if port else None,
        database=parts.pop("dbname", None),
        query=parts,
    )
    return url.render_as_string(hide_password=False)


def _config(ini: Path) -> Any:
    from alembic.config import Config

    config = Config(str(ini))
    # ConfigParser interpolation: a % in the password must be doubled.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(os.environ[URL_VARIABLE]).replace("%", "%%"))
    return config


class AlembicSteps(Steps):
    """The revisions of a single-head Alembic history, from base to head."""

    def __init__(self, config: Any) -> None:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(config)
        heads = script.get_heads()
        if len(heads) > 1:
            raise MigrationError(f"alembic history has {len(heads)} heads ({', '.join(heads)}); merge them")
        self._config = config
        self.revisions = list(reversed(list(script.walk_revisions())))
        self.labels = [f"{rev.revision} ({rev.doc})" if rev.doc else rev.revision for rev in self.revisions]

    def up(self, dsn: str, index: int) -> None:
        from alembic import command

        command.upgrade(self._config, self.revisions[index].revision)

    def down(self, dsn: str, index: int) -> None:
        from alembic import command

        command.downgrade(self._config, "-1")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("upgrade", "roundtrip"):
        print("usage: python -m pytest_aegis.postgres.alembic_runner upgrade|roundtrip INI", file=sys.stderr)
        return 2
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        print(f"Alembic support needs alembic and SQLAlchemy ({exc}): {ALEMBIC_HINT}", file=sys.stderr)
        return 1
    command, ini = argv[0], Path(argv[1])
    config = _config(ini)
    if command == "upgrade":
        from alembic import command as alembic_command

        alembic_command.upgrade(config, "head")
        print("ok")
        return 0
    ignore = tuple(name for name in os.environ.get(IGNORE_VARIABLE, "").split(",") if name)
    trace = run_roundtrip(AlembicSteps(config), os.environ[URL_VARIABLE], ignore)
    print(json.dumps(trace.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
