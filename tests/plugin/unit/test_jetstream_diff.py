"""What a test added to a server's JetStream, from two /jsz replies (pure logic)."""

from __future__ import annotations

from typing import Any

from pytest_aegis.natsd.jetstream import Added, added, parse_jsz


def jsz(**streams: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """A /jsz reply of one account: ``name=(created, {consumer: created})``."""
    detail = [
        {"name": name, "created": created,
         "consumer_detail": [{"name": c, "created": t} for c, t in consumers.items()]}
        for name, (created, consumers) in streams.items()
    ]  # fmt: skip
    return {"account_details": [{"name": "$G", "id": "$G", "stream_detail": detail}]}


def test_new_streams_and_new_consumers_of_old_streams_are_added() -> None:
    before = parse_jsz(jsz(OLD=("t1", {"kept": "t1"})))
    after = parse_jsz(jsz(OLD=("t1", {"kept": "t1", "extra": "t2"}), NEW=("t2", {"on-new": "t2"})))
    found = added(before, after)
    assert found == Added(streams=(("$G", "NEW"),), consumers=(("$G", "OLD", "extra"),))
    assert found.describe() == "stream NEW, consumer OLD/extra"  # the new stream's consumer goes with it


def test_a_stream_made_again_is_new_and_nothing_changed_is_nothing() -> None:
    before = parse_jsz(jsz(S=("t1", {"c": "t1"})))
    assert not added(before, before)
    assert added(before, parse_jsz(jsz(S=("t9", {"c": "t9"})))).streams == (("$G", "S"),)
    assert not added(before, parse_jsz({}))  # the test deleted it: nothing to remove
