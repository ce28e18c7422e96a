"""assert_no_acked_write_lost's verdict (pure) and its refusal to check nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from pytest_aegis import assert_no_acked_write_lost
from pytest_aegis.assertions.jetstream import describe_acked


def verdict(acked: list[str], stored: dict[str, int]) -> str | None:
    return describe_acked("S", acked, Counter(stored), state="3 message(s)", header="Nats-Msg-Id")


def test_every_acked_write_once_passes_and_unacked_extras_do_not_fail() -> None:
    assert verdict(["a", "b"], {"a": 1, "b": 1}) is None
    assert verdict(["a"], {"a": 1, "timed-out-but-stored": 1}) is None


def test_a_lost_and_a_duplicated_write_are_named_with_the_streams_state() -> None:
    message = verdict(["a", "b", "c"], {"a": 1, "b": 2, "x": 1})
    assert message is not None
    assert "3 acknowledged write(s) (Nats-Msg-Id), 1 stored exactly once" in message
    assert "lost (acknowledged, not in the stream): 1 ['c']" in message
    assert "duplicated: 1 {'b': 2}" in message
    assert "stored but never acknowledged (not a loss): 1 ['x']" in message
    assert "stream state: 3 message(s)" in message


def test_nothing_acknowledged_fails_as_a_check_that_could_not_fail() -> None:
    nc: Any = None  # never reached: the check refuses before it reads anything
    with pytest.raises(AssertionError, match="no acknowledged write to check"):
        asyncio.run(assert_no_acked_write_lost(nc, "S", []))
