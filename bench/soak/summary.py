"""Soak runs into the JSON summary: per run its counts and failures, per test how often it failed.

Pure: no I/O.  A run fails when a test in its report failed or errored, and also when pytest exited
non-zero (or wrote no report) with no failed test in it, which counts as a failure of the pseudo
test :data:`CRASHED` (a crash, a usage error, exit 5 "no tests ran", an unmet ``--aegis-require``),
or when it passed its deadline and was killed (:data:`TIMED_OUT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.soak.junit import FAILING, Outcome

CRASHED = "<run crashed>"
TIMED_OUT = "<run timed out>"
COUNTED: tuple[Outcome, ...] = ("passed", "failed", "error", "skipped")


@dataclass(frozen=True)
class RunResult:
    """One pytest run of the soak."""

    index: int
    backend: str
    seed: int
    command: str  # to replay it (pytest-xdist's distribution of tests is not replayed)
    exit_code: int
    duration_s: float
    outcomes: Mapping[str, Outcome] | None  # None: no readable JUnit report
    log: str
    timed_out: bool = False
    strays: bool = False  # processes of its group outlived pytest (killed)
    output_tail: Sequence[str] = field(default_factory=tuple)  # kept only for a failed run

    def failures(self) -> list[str]:
        """The ids of the tests that failed or errored, then the run's own pseudo test, if any."""
        failed = sorted(key for key, outcome in (self.outcomes or {}).items() if outcome in FAILING)
        if self.timed_out:
            failed.append(TIMED_OUT)
        elif not failed and (self.exit_code != 0 or self.outcomes is None):
            failed.append(CRASHED)
        return failed

    def to_json(self) -> dict[str, Any]:
        counts = {outcome: 0 for outcome in COUNTED}
        for outcome in (self.outcomes or {}).values():
            counts[outcome] += 1
        failures = self.failures()
        entry: dict[str, Any] = {
            "index": self.index,
            "backend": self.backend,
            "seed": self.seed,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 1),
            "passed": counts["passed"],
            "failed": counts["failed"],
            "errors": counts["error"],
            "skipped": counts["skipped"],
            "failures": failures,
            "command": self.command,
            "log": self.log,
        }
        if self.timed_out:
            entry["timed_out"] = True
        if self.strays:
            entry["strays"] = True
        if failures:
            entry["output_tail"] = list(self.output_tail)
        return entry


def run_from_json(entry: Mapping[str, Any], outcomes: Mapping[str, Outcome] | None) -> RunResult:
    """A run of an earlier summary (:meth:`RunResult.to_json`), with its report's ``outcomes``
    read again: how a resumed soak keeps the runs it had."""
    return RunResult(
        index=int(entry["index"]),
        backend=str(entry["backend"]),
        seed=int(entry["seed"]),
        command=str(entry["command"]),
        exit_code=int(entry["exit_code"]),
        duration_s=float(entry["duration_s"]),
        outcomes=outcomes,
        log=str(entry["log"]),
        timed_out=bool(entry.get("timed_out", False)),
        strays=bool(entry.get("strays", False)),
        output_tail=tuple(entry.get("output_tail", ())),
    )


def per_test(runs: Sequence[RunResult]) -> dict[str, dict[str, Any]]:
    """For every test that failed at least once: the runs it was in, its failures and in which runs,
    most failures first.  A pseudo test is "in" every run."""
    seen: dict[str, int] = {}
    failed_in: dict[str, list[int]] = {}
    for run in runs:
        for key in run.outcomes or {}:
            seen[key] = seen.get(key, 0) + 1
        for key in run.failures():
            failed_in.setdefault(key, []).append(run.index)
    order = sorted(failed_in, key=lambda key: (-len(failed_in[key]), key))
    return {
        key: {"runs": seen.get(key, len(runs)), "failed": len(failed_in[key]), "failed_in": failed_in[key]}
        for key in order
    }


def summarize(runs: Sequence[RunResult], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The soak's JSON document: ``metadata`` first, then the runs, the failing tests and totals."""
    entries = [run.to_json() for run in runs]
    total_failures = sum(len(entry["failures"]) for entry in entries)
    totals = {key: sum(entry[key] for entry in entries) for key in ("passed", "failed", "errors", "skipped")}
    return {
        **metadata,
        "total_failures": total_failures,
        "totals": {
            "runs": len(entries),
            "failed_runs": sum(1 for entry in entries if entry["failures"]),
            "by_backend": {
                backend: sum(1 for entry in entries if entry["backend"] == backend)
                for backend in dict.fromkeys(entry["backend"] for entry in entries)
            },
            "tests": len({key for run in runs for key in run.outcomes or {}}),
            **totals,
        },
        "tests": per_test(runs),
        "runs": entries,
    }
