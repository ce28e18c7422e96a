"""The verdict of assert_no_event_lost / assert_event_persisted, built from counts (no database)."""

from __future__ import annotations

from pytest_aegis.assertions.audit import EventCounts, describe_events, near_misses


def verdict(expected, counts, total=None, unexpected=(), show=10):
    found = EventCounts(counts, sum(counts.values()) if total is None else total, tuple(unexpected))
    return describe_events(expected, found, table="audit_events", elapsed=1.234, show=show)


def test_every_id_once_passes():
    assert verdict(["a", "b"], {"a": 1, "b": 1}) is None
    assert verdict(["a", "a"], {"a": 1}) is None  # expected ids are a set


def test_missing_ids_are_counted_and_listed():
    message = verdict(["a", "b", "c"], {"a": 1}, total=5)
    assert message.splitlines()[0] == (
        "audit_events: expected 3 distinct event id(s) stored exactly once, after 1.23s: "
        "1 stored once, 2 missing, 0 duplicated (5 row(s) in the table)"
    )
    assert "missing (first 2): ['b', 'c']" in message
    assert "duplicated" not in message.split("\n", 1)[1]


def test_duplicates_are_counted_with_their_row_counts():
    message = verdict(["a", "b"], {"a": 3, "b": 1})
    assert "1 stored once, 0 missing, 1 duplicated (4 row(s) in the table)" in message
    assert "duplicated, id: rows (first 1): {'a': 3}" in message


def test_lists_are_cut_to_the_first_n():
    expected = [f"id{n:03d}" for n in range(50)]
    message = verdict(expected, {}, show=3)
    assert "50 missing" in message
    assert "missing (first 3): ['id000', 'id001', 'id002']" in message


def test_near_misses_and_unexpected_ids_are_shown():
    message = verdict(["Order-1", "b"], {"b": 1}, total=2, unexpected=["order-1 "])
    assert "near misses (stored id ~ missing id): {'order-1 ': 'Order-1'}" in message
    assert "stored but not expected (first 1): ['order-1 ']" in message


def test_near_misses_ignore_exact_and_unrelated_ids():
    assert near_misses(["a", "B"], ["a", "c", "b"]) == {"b": "B"}


def test_strict_fails_on_rows_nobody_expected_and_lists_them():
    found = EventCounts({"a": 1, "b": 1}, 4, ("leak-1", "leak-2"))
    assert describe_events(["a", "b"], found, table="audit_events", elapsed=0.5) is None  # not strict
    message = describe_events(["a", "b"], found, table="audit_events", elapsed=0.5, strict=True)
    assert message is not None
    assert message.splitlines()[0] == (
        "audit_events: expected 2 distinct event id(s) stored exactly once and nothing else, after 0.50s: "
        "2 stored once, 0 missing, 0 duplicated, 2 unexpected row(s) (4 row(s) in the table)"
    )
    assert "stored but not expected (first 2): ['leak-1', 'leak-2']" in message
    exact = EventCounts({"a": 1, "b": 1}, 2)
    assert describe_events(["a", "b"], exact, table="audit_events", elapsed=0.5, strict=True) is None
