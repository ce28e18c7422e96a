"""The service under test: :mod:`.spec` (how to run it), :mod:`.runtime` (what a backend runs it
in), :mod:`.process` (the handle a test gets)."""

from __future__ import annotations

from pytest_aegis.app.process import AppProcess
from pytest_aegis.app.spec import REFERENCE_COMMAND, AppSpec

__all__ = ["REFERENCE_COMMAND", "AppProcess", "AppSpec"]
