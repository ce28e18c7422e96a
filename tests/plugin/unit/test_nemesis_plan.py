"""The nemesis's schedule: drawn from a seed, the same every time for the same seed (pure)."""

from __future__ import annotations

import pytest

from pytest_aegis.natsd.nemesis import FAULTS, Step, plan


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    first = plan(5, 3, steps=20)
    assert first == plan(5, 3, steps=20)
    assert first != plan(6, 3, steps=20)
    assert [step.number for step in first] == list(range(1, 21))


def test_a_schedule_keeps_to_the_faults_nodes_and_times_asked() -> None:
    schedule = plan(11, 5, faults=["pause", "latency"], steps=50, hold=2.0, gap=1.0)
    assert {step.fault for step in schedule} == {"pause", "latency"}
    assert {step.node for step in schedule} <= set(range(5))
    assert all(1.0 <= step.hold <= 3.0 and 0.5 <= step.gap <= 1.5 for step in schedule)
    assert all((step.latency_ms is not None) == (step.fault == "latency") for step in schedule)


def test_the_order_faults_are_given_in_does_not_change_the_schedule() -> None:
    assert plan(3, 3, faults=["kill", "pause"]) == plan(3, 3, faults=["pause", "kill"])


def test_a_step_reads_as_what_happens() -> None:
    step = Step(2, "latency", node=1, gap=0.5, hold=1.25, latency_ms=100)
    assert str(step) == "step 2: latency 100 ms on node 1 for 1.25s after 0.50s"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"faults": ["kill", "flood"]},
            r"unknown fault\(s\) \['flood'\]: valid faults are " + ", ".join(FAULTS),
        ),
        ({"faults": "kill"}, "give a non-empty list of"),
        ({"faults": []}, "give a non-empty list of"),
        ({"steps": 0}, "steps=0 >= 1"),
        ({"hold": 0}, "hold=0 > 0"),
    ],
)
def test_bad_settings_name_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(1, 3, **kwargs)  # type: ignore[arg-type]


def test_a_store_step_draws_its_damage_and_the_default_faults_leave_the_store_alone() -> None:
    schedule = plan(3, 3, faults=["store"], steps=30)
    assert {step.damage for step in schedule} == {"bitflip", "truncate", "delete"}
    assert str(schedule[0]).startswith(f"step 1: store ({schedule[0].damage} of blocks) on node")
    assert all(step.fault != "store" for step in plan(3, 3, steps=50))
