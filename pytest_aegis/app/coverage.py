"""Coverage of the service under test: when coverage.py measures the pytest session (pytest-cov,
``coverage run -m pytest``), every service process the harness starts locally is measured too,
and its data joins the session's report.

No change to the service is needed: coverage.py's own start-up hook (the ``a1_coverage.pth`` it
installs) starts measuring in any Python process whose environment has
``COVERAGE_PROCESS_CONFIG``; the harness gives the service the session's configuration there,
with parallel data files (so pytest-cov's combine picks them up) and saving on SIGTERM.  A
process killed with SIGKILL writes nothing.

In a container (the docker backend) the same happens when the image has coverage.py: the service
writes into a directory mounted from this machine (:data:`CONTAINER_DIR`), and when its container
stops :func:`adopt` moves that data into the session's, with the image's paths of the measured
packages (``--cov=<package>``) mapped to this machine's.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import secrets
import sys
from pathlib import Path
from typing import Any

#: Where a service in a container writes its coverage data (a directory of this machine, mounted).
CONTAINER_DIR = "/aegis-coverage"


def _current() -> Any:
    """The session's running ``coverage.Coverage``, if coverage.py measures this process."""
    coverage = sys.modules.get("coverage")  # never imported just to ask
    if coverage is None:
        return None
    return coverage.Coverage.current()


def measuring() -> bool:
    return _current() is not None


def _env(data_file: str) -> dict[str, str]:
    cov = _current()
    if cov is None:
        return {}
    config = copy.deepcopy(cov.config)
    config.parallel = True  # its own .coverage.<host>.<pid>.<random>, combined at the end
    config.sigterm = True  # the harness stops services with SIGTERM
    config.data_file = data_file
    return {"COVERAGE_PROCESS_CONFIG": config.serialize()}


def subprocess_env() -> dict[str, str]:
    """The environment that makes a Python child process measure itself into the session's data
    (empty when the session is not measured)."""
    cov = _current()
    return _env(os.path.abspath(cov.config.data_file)) if cov is not None else {}


def container_env() -> dict[str, str]:
    """The same for a process in a container, writing into :data:`CONTAINER_DIR`."""
    return _env(f"{CONTAINER_DIR}/.coverage")


def _package_dirs() -> dict[str, Path]:
    """The measured packages (``source`` given as module names) and where they are here."""
    cov = _current()
    found: dict[str, Path] = {}
    for name in (cov.config.source or []) if cov is not None else []:
        spec = importlib.util.find_spec(name) if "/" not in name else None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if locations:
            found[name.replace(".", "/")] = Path(locations[0])
    return found


def _mapped(path: str, packages: dict[str, Path]) -> str | None:
    for package, here in packages.items():
        marker = f"/{package}/"
        if marker in path:
            return str(here / path.split(marker, 1)[1])
    return None


def adopt(directory: Path) -> int:
    """Move the data files a container wrote into ``directory`` into the session's data (paths
    mapped to this machine's; files of unmeasured packages dropped); return how many."""
    cov = _current()
    if cov is None:
        return 0
    from coverage import CoverageData

    packages = _package_dirs()
    adopted = 0
    for path in sorted(directory.glob(".coverage.*")):
        theirs = CoverageData(basename=str(path))
        theirs.read()
        ours = CoverageData(
            basename=os.path.abspath(cov.config.data_file), suffix=f"aegis-{secrets.token_hex(6)}"
        )
        for measured in theirs.measured_files():
            here = _mapped(measured, packages)
            if here is None:
                continue
            arcs = theirs.arcs(measured)
            if arcs is not None and theirs.has_arcs():
                ours.add_arcs({here: arcs})
            else:
                ours.add_lines({here: theirs.lines(measured) or []})
        ours.write()
        path.unlink()
        adopted += 1
    return adopted


def describe(backend: str) -> str | None:
    """The report header's line about it (``None`` when the session is not measured)."""
    if not measuring():
        return None
    if backend == "docker":
        return (
            "coverage of the service under test: on; in containers when the image has coverage.py "
            "(measured packages: --cov=<package> names)"
        )
    return "coverage of the service under test: on (its processes add to this session's data)"
