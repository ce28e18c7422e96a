"""``python -m bench.soak [--runs N] [--backends local,docker] [--out FILE] ...`` (``make soak``).

Runs the suite ``--runs`` times, taking ``--backends`` in turn, and writes the JSON summary to
``--out`` after every run; each run's log and JUnit XML go into the directory of the same name
(``bench-results/soak.json`` -> ``bench-results/soak/run-03-docker.log``).  One progress line per
run on stderr.  Exit status: 0 without a failure, 1 with any, 2 on bad input, 130 if interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from xml.etree.ElementTree import ParseError

from bench.soak import junit
from bench.soak.load import cpu_burners
from bench.soak.plan import (
    BACKENDS,
    Settings,
    backend_of,
    env_prefix,
    parse_backends,
    pytest_command,
    run_env,
)
from bench.soak.runner import run_logged, sweep, tail
from bench.soak.summary import RunResult, run_from_json, summarize

DEFAULT_RUNS = 10
DEFAULT_BURNERS = 2  # CI's machines have two cores: keep both busy
DEFAULT_TIMEOUT_S = 30 * 60
TAIL_LINES = 40


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _backends(text: str) -> tuple[str, ...]:
    try:
        return parse_backends(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Run the suite again and again (random order, busy cores); count failures per test.",
    )
    parser.add_argument(
        "--runs",
        metavar="N",
        type=_at_least(1),
        default=DEFAULT_RUNS,
        help=f"pytest runs (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--backends",
        metavar="LIST",
        type=_backends,
        default=BACKENDS,
        help=f"backends taken in turn, comma-separated (default and valid: {','.join(BACKENDS)})",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        default=Path("bench-results/soak.json"),
        help="the JSON summary (default %(default)s)",
    )
    parser.add_argument(
        "--pytest-args",
        action="append",
        default=[],
        metavar="ARGS",
        help="more pytest arguments for every run, one shell-quoted string (repeatable)",
    )
    parser.add_argument(
        "--require",
        metavar="CASES",
        default=None,
        help="--aegis-require for every run (make soak: $(REQUIRE))",
    )
    parser.add_argument(
        "--docker-network",
        metavar="NAME",
        default="host",
        help="--aegis-docker-network of the docker runs (default %(default)s; '' leaves it out)",
    )
    parser.add_argument(
        "--burners",
        metavar="N",
        type=_at_least(0),
        default=DEFAULT_BURNERS,
        help=f"busy-loop processes during each run (default {DEFAULT_BURNERS})",
    )
    parser.add_argument("--no-load", action="store_true", help="no busy-loop processes (--burners 0)")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds a run may take before it is stopped and counted failed (default {DEFAULT_TIMEOUT_S})",
    )
    parser.add_argument("--stop-on-failure", action="store_true", help="stop after the first failed run")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the soak in --out (same commit, backends and load; e.g. in a later session): "
        "its runs are kept and runs are added until --runs in all",
    )
    return parser


def settings_of(args: argparse.Namespace, python: str) -> Settings:
    """What every run's command line shares, from the options: each ``--pytest-args`` split as a
    shell would, an empty ``--require`` or ``--docker-network`` left out."""
    return Settings(
        python=python,
        require=args.require or None,
        docker_network=args.docker_network or None,
        extra=tuple(word for text in args.pytest_args for word in shlex.split(text)),
    )


def _docker_problem() -> str | None:
    """Why there is no Docker engine to run on (``docker info`` failed), or ``None``."""
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["docker info failed"])[-1]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _read_outcomes(xml: Path) -> dict[str, junit.Outcome] | None:
    try:
        return junit.outcomes(xml.read_text(errors="replace"))
    except (OSError, ParseError):
        return None


def one_run(
    index: int, backend: str, settings: Settings, env: Mapping[str, str], logs: Path, args: argparse.Namespace
) -> RunResult:
    """Run ``index`` of the soak, on ``backend``, in a random order of its own."""
    seed = random.SystemRandom().getrandbits(32)
    stem = f"run-{index:02d}-{backend}"
    xml, log = logs / f"{stem}.xml", logs / f"{stem}.log"
    argv = pytest_command(settings, backend, seed, xml)
    try:
        with cpu_burners(0 if args.no_load else args.burners):
            finished = run_logged(argv, env, log, args.timeout)
    except BaseException:
        sweep(settings.python, env, log)
        raise
    if finished.timed_out:
        sweep(settings.python, env, log)
    return RunResult(
        index=index,
        backend=backend,
        seed=seed,
        command=f"{env_prefix(env)} {shlex.join(argv)}",
        exit_code=finished.exit_code,
        duration_s=finished.duration_s,
        outcomes=_read_outcomes(xml),
        log=str(log),
        timed_out=finished.timed_out,
        strays=finished.strays,
        output_tail=tail(log, TAIL_LINES),
    )


def _progress(run: RunResult, total: int) -> str:
    entry = run.to_json()
    line = (
        f"soak {run.index + 1}/{total} {run.backend} seed={run.seed} exit={run.exit_code} "
        f"{entry['duration_s']:.0f}s: {entry['passed']} passed, {entry['failed']} failed, "
        f"{entry['errors']} errors, {entry['skipped']} skipped"
    )
    if entry["failures"]:
        shown = entry["failures"][:5]
        more = len(entry["failures"]) - len(shown)
        line += f"  FAILED: {', '.join(shown)}" + (f" (+{more} more)" if more else "") + f"  log: {run.log}"
    if run.strays:
        line += "  (processes of the run outlived it: killed)"
    return line


def _write(out: Path, document: dict[str, Any]) -> None:
    out.write_text(json.dumps(document, indent=2) + "\n")


def resumable(out: Path, args: argparse.Namespace) -> tuple[dict[str, Any] | None, str | None]:
    """The earlier summary at ``out`` if this soak can go on with it, else why not."""
    try:
        earlier: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        return None, f"no soak summary to go on with at {out} ({exc}); start one without --resume"
    commit = _git_commit()
    burners = 0 if args.no_load else args.burners
    for what, theirs, ours in (
        ("commit", earlier.get("commit"), commit),
        ("backends", earlier.get("backends"), list(args.backends)),
        ("busy-loop processes", earlier.get("burners"), burners),
    ):
        if theirs != ours:
            return (
                None,
                f"the soak at {out} ran with {what} {theirs}, this one would run with {ours}; "
                "start a new one",
            )
    if len(earlier.get("runs", [])) >= args.runs:
        return None, f"the soak at {out} already has {len(earlier['runs'])} runs; ask for more with --runs"
    return earlier, None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if "docker" in args.backends and (problem := _docker_problem()) is not None:
        print(
            f"python -m bench.soak: the docker backend needs a Docker engine ({problem}); "
            "start one (make docker-up) or pass --backends local",
            file=sys.stderr,
        )
        return 2
    out: Path = args.out
    logs = out.with_suffix("")
    logs.mkdir(parents=True, exist_ok=True)
    earlier: dict[str, Any] | None = None
    if args.resume:
        earlier, problem = resumable(out, args)
        if problem is not None:
            print(f"python -m bench.soak --resume: {problem}", file=sys.stderr)
            return 2
    else:
        for stale in [*logs.glob("run-*.log"), *logs.glob("run-*.xml")]:
            stale.unlink()  # a previous soak's: they would pass for this one's
    settings = settings_of(args, sys.executable)
    env = run_env(os.environ)
    metadata: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "bench.soak", *argv]),
        "started": _now(),
        "finished": None,
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "runs_planned": args.runs,
        "backends": list(args.backends),
        "burners": 0 if args.no_load else args.burners,
        "timeout_s": args.timeout,
    }
    turns = ", ".join(args.backends) + (" in turn" if len(args.backends) > 1 else "")
    print(
        f"soak: {args.runs} runs ({turns}), {metadata['burners']} busy-loop processes, "
        f"logs in {logs}/, summary {out}",
        file=sys.stderr,
    )
    runs: list[RunResult] = []
    if earlier is not None:
        metadata |= {"command": earlier["command"], "started": earlier["started"]}
        metadata["resumed"] = [
            *earlier.get("resumed", []),
            {"at": _now(), "after_runs": len(earlier["runs"])},
        ]
        runs = [
            run_from_json(entry, _read_outcomes(Path(entry["log"]).with_suffix(".xml")))
            for entry in earlier["runs"]
        ]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    status = 0
    try:
        for index in range(len(runs), args.runs):
            run = one_run(index, backend_of(index, args.backends), settings, env, logs, args)
            runs.append(run)
            _write(out, summarize(runs, metadata))
            print(_progress(run, args.runs), file=sys.stderr, flush=True)
            if args.stop_on_failure and run.failures():
                metadata["stopped_on_failure"] = True
                break
    except KeyboardInterrupt:
        metadata["interrupted"] = True
        status = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        metadata["finished"] = _now()
        document = summarize(runs, metadata)
        _write(out, document)
    failures = document["total_failures"]
    ended = "interrupted after" if status else "done:"
    print(f"soak {ended} {len(runs)} runs, {failures} failures -> {out}", file=sys.stderr)
    return status or (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())
