"""How a proxy's faults fold into one flow per direction (pure logic: no sockets)."""

from __future__ import annotations

import random

import pytest

from pytest_aegis.faults.flows import Effect, Ending, Flow, Slicing, fold


def test_no_effect_is_a_plain_flow() -> None:
    assert fold([]) == Flow() and Flow().plain


def test_effects_stack_as_toxiproxys_toxics_do() -> None:
    flow = fold(
        [
            (1, Effect(latency=0.1, jitter=0.01)),
            (2, Effect(rate=1000)),
            (3, Effect(latency=0.2, rate=500)),
            (4, Effect(rate=800, slow_close=0.3)),
            (5, Effect(limit=10)),
            (6, Effect(ending=Ending(reset=True, after=0, since=1.0))),
        ]
    )
    assert flow.latency == pytest.approx(0.3) and flow.jitter == pytest.approx(0.01)
    assert flow.rate == 500, "the lowest bandwidth wins"
    assert flow.slow_close == 0.3 and flow.limits == {5: 10}
    assert flow.endings == {6: Ending(reset=True, after=0, since=1.0)}
    assert not flow.plain


def test_an_ending_or_a_slow_close_alone_leaves_the_bytes_plain() -> None:
    assert fold([(1, Effect(ending=Ending(reset=False, after=1, since=0))), (2, Effect(slow_close=1))]).plain
    assert not fold([(1, Effect(slicing=Slicing(10)))]).plain
    assert not fold([(1, Effect(held=True))]).plain


def test_the_latest_slicer_slices() -> None:
    assert fold([(1, Effect(slicing=Slicing(10))), (2, Effect(slicing=Slicing(3)))]).slicing == Slicing(3)


@pytest.mark.parametrize(("average", "variation"), [(1, 0), (10, 0), (10, 9), (100, 37)])
def test_slices_add_up_and_stay_within_their_variation(average: int, variation: int) -> None:
    rng = random.Random(7)
    for total in (1, 9, 10, 11, 1000):
        sizes = list(Slicing(average, variation).sizes(total, rng))
        assert sum(sizes) == total
        assert all(1 <= size <= average + variation for size in sizes)
        assert all(size >= average - variation for size in sizes[:-1]), "only the last may be short"
