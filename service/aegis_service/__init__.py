"""Reference service under test for pytest-aegis.

Run it with ``python -m aegis_service``; configuration comes from ``AEGIS_*`` environment variables
(see ``service/README.md``).
"""

from __future__ import annotations

from importlib import metadata


def _package_version() -> str:
    try:
        return metadata.version("aegis-service")
    except metadata.PackageNotFoundError:
        return "0.1.0"


__version__: str = _package_version()

__all__ = ["__version__"]
