"""Assertion helpers, importable from :mod:`pytest_aegis`."""

from __future__ import annotations

from pytest_aegis.assertions.audit import assert_event_persisted, assert_no_event_lost

__all__ = ["assert_event_persisted", "assert_no_event_lost"]
