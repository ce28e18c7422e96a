"""Coverage of the service under test: when coverage.py measures the pytest session (pytest-cov,
``coverage run -m pytest``), every service process the harness starts locally is measured too,
and its data joins the session's report.

No change to the service is needed: coverage.py's own start-up hook (the ``a1_coverage.pth`` it
installs) starts measuring in any Python process whose environment has
``COVERAGE_PROCESS_CONFIG``; the harness gives the service the session's configuration there,
with parallel data files (so pytest-cov's combine picks them up) and saving on SIGTERM.  A
process killed with SIGKILL writes nothing.  The docker backend's containers are not measured:
the image's paths are not the session's, so their data could not be combined.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any


def _current() -> Any:
    """The session's running ``coverage.Coverage``, if coverage.py measures this process."""
    coverage = sys.modules.get("coverage")  # never imported just to ask
    if coverage is None:
        return None
    return coverage.Coverage.current()


def measuring() -> bool:
    return _current() is not None


def subprocess_env() -> dict[str, str]:
    """The environment that makes a Python child process measure itself into the session's data
    (empty when the session is not measured)."""
    cov = _current()
    if cov is None:
        return {}
    config = copy.deepcopy(cov.config)
    config.parallel = True  # its own .coverage.<host>.<pid>.<random>, combined at the end
    config.sigterm = True  # the harness stops services with SIGTERM
    config.data_file = os.path.abspath(config.data_file)
    return {"COVERAGE_PROCESS_CONFIG": config.serialize()}


def describe(backend: str) -> str | None:
    """The report header's line about it (``None`` when the session is not measured)."""
    if not measuring():
        return None
    if backend == "docker":
        return (
            "coverage of the service under test: local processes only; off in containers (the "
            "image's paths are not this session's, so their data could not be combined)"
        )
    return "coverage of the service under test: on (its processes add to this session's data)"
