"""A seeded nemesis for a NATS cluster (Jepsen's word): while a test's workload runs, faults from a
chosen set, one at a time, on a schedule drawn from a seed, every one healed before the next.

The schedule is pure (:func:`plan`): the same seed, cluster size and settings give the same steps,
so a run that found something replays from the seed its log names.  :class:`Nemesis` runs it as
an async context manager (``async with cluster.nemesis(seed=5) as nemesis: ...``); leaving the
block stops the schedule where it is and heals everything (resumes paused nodes, starts stopped
ones, removes partitions and latency), then waits until the cluster is healthy.

Faults (:data:`FAULTS`): ``kill`` (SIGKILL, started again after the hold), ``pause`` (frozen for
the hold), ``partition`` (the node's routes cut for the hold), ``latency`` (its routes slowed for
the hold), ``lame_duck`` (lame-duck mode until it exits, then started again), ``store`` (stopped,
the message blocks of the nemesis's streams damaged: a bit flip, truncation or deletion drawn
from the seed, started again after the hold), ``power`` (its power cut: killed, its store back to
what it had fsynced, started again after the hold; the cluster's spec needs ``power_loss=True``).
:data:`DEFAULT_FAULTS`: all but ``store``, which needs the streams to damage, and ``power``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, get_args

from pytest_aegis.natsd.store import KINDS, Kind

if TYPE_CHECKING:
    from pytest_aegis.natsd.cluster import NatsCluster

NemesisFault = Literal["kill", "pause", "partition", "latency", "lame_duck", "store", "power"]
FAULTS: tuple[NemesisFault, ...] = get_args(NemesisFault)
#: Those that need nothing of the test: ``store`` needs its streams, ``power`` a power-loss cluster.
DEFAULT_FAULTS: tuple[NemesisFault, ...] = ("kill", "pause", "partition", "latency", "lame_duck")
#: Route latencies a ``latency`` step picks from, in milliseconds.
LATENCIES_MS = (50, 100, 250)

log = logging.getLogger("pytest_aegis.nemesis")


@dataclass(frozen=True)
class Step:
    """One fault of a schedule: after ``gap`` seconds of calm, ``fault`` on node ``node`` for
    ``hold`` seconds (``latency_ms`` for a latency step, ``damage`` for a store step)."""

    number: int
    fault: NemesisFault
    node: int
    gap: float
    hold: float
    latency_ms: int | None = None
    damage: Kind | None = None

    def __str__(self) -> str:
        what = f"{self.fault} {self.latency_ms} ms" if self.latency_ms else self.fault
        what = f"{self.fault} ({self.damage} of blocks)" if self.damage else what
        return f"step {self.number}: {what} on node {self.node} for {self.hold:.2f}s after {self.gap:.2f}s"


def check_faults(faults: Sequence[str]) -> tuple[NemesisFault, ...]:
    """``faults`` as the nemesis's fault names; :class:`ValueError` naming an unknown one."""
    if isinstance(faults, str) or not faults:
        raise ValueError(f"nemesis: faults={faults!r}: give a non-empty list of: {', '.join(FAULTS)}")
    if unknown := [fault for fault in faults if fault not in FAULTS]:
        raise ValueError(f"nemesis: unknown fault(s) {unknown}: valid faults are {', '.join(FAULTS)}")
    return tuple(fault for fault in FAULTS if fault in faults)  # a set, in a fixed order


def plan(
    seed: int,
    size: int,
    *,
    faults: Sequence[str] = DEFAULT_FAULTS,
    steps: int = 6,
    hold: float = 2.0,
    gap: float = 1.0,
) -> list[Step]:
    """The schedule for ``seed``: ``steps`` faults drawn from ``faults`` on nodes ``0..size-1``,
    each held about ``hold`` seconds (0.5x to 1.5x) after about ``gap`` seconds of calm."""
    chosen = check_faults(faults)
    if steps < 1 or hold <= 0 or gap < 0:
        raise ValueError(f"nemesis: steps={steps!r} >= 1, hold={hold!r} > 0 and gap={gap!r} >= 0 are needed")
    rng = random.Random(seed)
    schedule = []
    for number in range(1, steps + 1):
        fault = rng.choice(chosen)
        schedule.append(
            Step(
                number,
                fault,
                node=rng.randrange(size),
                gap=round(gap * rng.uniform(0.5, 1.5), 3),
                hold=round(hold * rng.uniform(0.5, 1.5), 3),
                latency_ms=rng.choice(LATENCIES_MS) if fault == "latency" else None,
                damage=rng.choice(KINDS) if fault == "store" else None,
            )
        )
    return schedule


class Nemesis:
    """Runs a :func:`plan` on a cluster; see the module's docstring.  ``planned``: the schedule;
    ``done``: the steps applied and healed so far; ``history``: what happened, with times."""

    def __init__(
        self,
        cluster: NatsCluster,
        seed: int,
        planned: list[Step],
        *,
        timeout: float,
        streams: Sequence[str] = (),
    ) -> None:
        self.cluster = cluster
        self.streams = tuple(streams)
        self.seed = seed
        self.planned = planned
        self.timeout = timeout
        self.done: list[Step] = []
        self.history: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._began = time.monotonic()

    def note(self, line: str) -> None:
        stamped = f"+{time.monotonic() - self._began:7.3f}s {line}"
        self.history.append(stamped)
        log.info("nemesis %s: %s", self.cluster.name, stamped)

    async def __aenter__(self) -> Nemesis:
        self._began = time.monotonic()
        self.note(f"seed={self.seed}: {len(self.planned)} step(s) (replay with the same seed)")
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def wait(self) -> None:
        """Until every planned step has been applied and healed (its error, if one failed)."""
        assert self._task is not None, "use the nemesis as `async with cluster.nemesis(...)`"
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        for step in self.planned:
            await asyncio.sleep(step.gap)  # the schedule's calm, not a wait for readiness
            self.note(f"{step}: begins")
            await self._apply(step)
            await self.cluster.wait_until_healthy(self.timeout)
            self.done.append(step)
            self.note(f"step {step.number}: healed, cluster healthy")

    async def _apply(self, step: Step) -> None:
        node = self.cluster.nodes[step.node]
        if step.fault == "kill":
            node.kill()
            await asyncio.sleep(step.hold)
            await asyncio.to_thread(node.restart)
        elif step.fault == "pause":
            node.pause()
            await asyncio.sleep(step.hold)
            node.resume()
        elif step.fault == "partition":
            self.cluster.partition([step.node])
            await asyncio.sleep(step.hold)
            self.cluster.heal()
        elif step.fault == "latency":
            assert step.latency_ms is not None
            with self.cluster.route_latency(step.node, step.latency_ms):
                await asyncio.sleep(step.hold)
        elif step.fault == "store":
            await asyncio.to_thread(node.stop)  # cleanly, as a node goes down for a disk to fail
            assert step.damage is not None
            for stream in self.streams:
                try:
                    damage = self.cluster.corrupt(
                        step.node, stream, kind=step.damage, seed=self.seed + step.number
                    )
                except ValueError as exc:  # nothing written there yet: nothing to damage
                    self.note(f"step {step.number}: {stream}: {str(exc).splitlines()[0]}")
                    continue
                self.note(f"step {step.number}: {str(damage).replace(chr(10), ';')}")
            await asyncio.sleep(step.hold)
            await asyncio.to_thread(node.restart)
        elif step.fault == "power":
            loss = await asyncio.to_thread(node.power_loss)
            self.note(f"step {step.number}: {loss}")
            await asyncio.sleep(step.hold)
            await asyncio.to_thread(node.restart)
        else:  # lame_duck: the hold is the server's own (until it exits)
            await asyncio.to_thread(node.lame_duck, wait_exit=True)
            await asyncio.to_thread(node.restart)

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        if not self._task.done():
            self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            self.note(f"stopped after {len(self.done)} of {len(self.planned)} step(s)")
        finally:
            await self._heal()

    async def _heal(self) -> None:
        self.cluster.heal()
        for node in self.cluster.nodes:
            if node.is_paused:
                node.resume()
            if not node.is_running:
                await asyncio.to_thread(node.restart)
        await self.cluster.wait_until_healthy(self.timeout)
        self.note("healed: every node running, no partition, no latency; cluster healthy")

    def __repr__(self) -> str:
        return f"<Nemesis seed={self.seed} {len(self.done)}/{len(self.planned)} steps on {self.cluster.name}>"
