"""``python -m bench [--only SUITE] [--reps N] [--quick] [--events N] [--out FILE]``.

Runs the selected suites (all by default) and prints one JSON document; with
``--out`` it is also written to that file.  Progress goes to stderr.  The exit
status is 1 when a suite failed (its entry then carries the error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import Suite

#: Suite name -> module (imported only when the suite is selected).
SUITES: dict[str, str] = {
    "nats": "bench.nats_ready",
    "health": "bench.health_rtt",
    "registry": "bench.registry_load",
    "postgres": "bench.pg_ready",
    "audit": "bench.audit_throughput",
    "containers": "bench.containers",  # needs the docker extra and a Docker engine
    "startup": "bench.startup",
    "cluster": "bench.cluster",
    "per_test": "bench.per_test",
}
#: Options only some suites take, passed to their ``run`` as keyword arguments when given.
SUITE_OPTIONS: dict[str, tuple[str, ...]] = {"audit": ("events",)}
DEFAULT_REPS = 40
MIN_REPS = 30
QUICK_REPS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of pytest-aegis; prints JSON."
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SUITES),
        metavar="SUITE",
        help=f"run only this suite (repeatable; default: all). Suites: {', '.join(sorted(SUITES))}",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"measured repetitions per contender and configuration (default {DEFAULT_REPS}, "
        f"at least {MIN_REPS}; with --quick default {QUICK_REPS}, any)",
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_REPS} repetitions")
    parser.add_argument(
        "--events", type=int, default=None, help="audit: events per run (default 50,000; --quick 500)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    return parser


def resolve_reps(parser: argparse.ArgumentParser, reps: int | None, quick: bool) -> int:
    if reps is None:
        return QUICK_REPS if quick else DEFAULT_REPS
    if reps < 1 or (not quick and reps < MIN_REPS):
        parser.error(f"--reps must be at least {MIN_REPS} for a measurement (or use --quick), got {reps}")
    return reps


def _metadata(argv: Sequence[str], reps: int, quick: bool, suites: Sequence[str]) -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "command": shlex.join(["python", "-m", "bench", *argv]),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "suites": list(suites),
        "reps": reps,
        "quick": quick,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(load) if load else None,
    }


def run_suite(name: str, reps: int, quick: bool, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Import and run one suite; a failure becomes an ``error`` entry (traceback on stderr)."""
    started = time.perf_counter()
    try:
        suite: Suite = importlib.import_module(SUITES[name])
        given = {key: value for key, value in (options or {}).items() if value is not None}
        extra = {key: given[key] for key in SUITE_OPTIONS.get(name, ()) if key in given}
        result = suite.run(reps, quick, **extra)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["wall_s"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    reps = resolve_reps(parser, args.reps, args.quick)
    selected = list(dict.fromkeys(args.only or SUITES))
    document: dict[str, Any] = {"metadata": _metadata(argv, reps, args.quick, selected), "suites": {}}
    for name in selected:
        document["suites"][name] = run_suite(name, reps, args.quick, {"events": args.events})
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    document["metadata"]["loadavg_end"] = list(load) if load else None
    text = json.dumps(document, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    failed = [name for name, result in document["suites"].items() if "error" in result]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
