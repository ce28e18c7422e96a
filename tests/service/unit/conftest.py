"""Fixtures for the pure-logic tests of the reference service (no servers, no NATS)."""

from __future__ import annotations

import pytest
from fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
