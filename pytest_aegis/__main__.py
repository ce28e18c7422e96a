"""``python -m pytest_aegis``: housekeeping commands.

python -m pytest_aegis sweep [--kept]   reclaim what dead (or kept) sessions left
python -m pytest_aegis certs DIR        write a fresh CA, server and client certs into DIR
python -m pytest_aegis gate REPORT... --require=CASES
                                        merge CI shards' security reports, apply the gate
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pytest_aegis.certs import AegisCA
from pytest_aegis.config import setting
from pytest_aegis.errors import ConfigError
from pytest_aegis.matrix import shards
from pytest_aegis.matrix.report import write_json
from pytest_aegis.session import default_root, sweep


def _sweep(args: argparse.Namespace) -> int:
    from pytest_aegis.backends.docker.sweep import sweep_if_engine

    report = sweep(include_kept=args.kept)
    report.containers = sweep_if_engine()  # after the dirs: a removed (kept) dir makes its containers dead
    for pid, name in report.killed:
        print(f"killed pid {pid} ({name})")
    for path in report.sessions:
        print(f"removed {path}")
    for container in report.containers:
        print(f"removed container {container}")
    if not report and not report.containers:
        print(f"nothing to sweep under {default_root()}")
    return 0


def _certs(args: argparse.Namespace) -> int:
    target: Path = args.directory
    target.mkdir(parents=True, exist_ok=True)
    ca = AegisCA(target)
    ca.server_cert_files("valid")
    ca.write_leaf(ca.client_cert, "client")
    for cert in target.glob("*.pem"):
        # Certificates are public: readable by a service running as another user (the non-root
        # container of docker-compose.integration.yml mounts ca.pem). Keys stay 0600.
        cert.chmod(0o644)
    for path in sorted(target.glob("*")):
        print(path)
    print("never commit these: the keys are private (certs/ is git-ignored)", file=sys.stderr)
    return 0


def _gate(args: argparse.Namespace) -> int:
    require = setting("require")
    if args.require is not None:
        origin, raw = "gate --require", args.require
    else:
        origin, raw = f"env {require.env}", os.environ.get(require.env, "")
    try:
        if not raw.strip():
            raise ConfigError(
                f"gate: name the cases to require with --require=... (or env {require.env}); "
                f"valid values (comma-separated): {', '.join(require.choices)}"
            )
        required = require.parse(raw, origin)
        recorder = shards.merge(args.reports)
    except ConfigError as exc:
        print(f"python -m pytest_aegis {exc}", file=sys.stderr)
        return 2
    passed, lines = shards.apply(recorder, required, len(args.reports))
    print("\n".join(lines))
    if args.out is not None:
        write_json(args.out, recorder, required)
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_aegis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sweep_cmd = commands.add_parser("sweep", help="reclaim servers and temp dirs of dead sessions")
    sweep_cmd.add_argument("--kept", action="store_true", help="also reclaim sessions run with --aegis-keep")
    sweep_cmd.set_defaults(run=_sweep)
    certs_cmd = commands.add_parser(
        "certs", help="write a CA, a server cert (127.0.0.1, localhost) and a client cert"
    )
    certs_cmd.add_argument("directory", type=Path)
    certs_cmd.set_defaults(run=_certs)
    gate_cmd = commands.add_parser(
        "gate",
        help="merge the security reports of CI shards (--aegis-security-report) and apply the gate: "
        "exit 1 if a required case was proved in no shard, 2 for a bad report or option",
    )
    gate_cmd.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    gate_cmd.add_argument(
        "--require", help=f"the cases to require, comma-separated (default: env {setting('require').env})"
    )
    gate_cmd.add_argument("--out", type=Path, help="also write the merged report (JSON) here")
    gate_cmd.set_defaults(run=_gate)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
