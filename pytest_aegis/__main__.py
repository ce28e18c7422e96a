"""``python -m pytest_aegis``: housekeeping commands.

python -m pytest_aegis sweep [--kept]   reclaim what dead (or kept) sessions left
python -m pytest_aegis certs DIR        write a fresh CA, server and client certs into DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_aegis.certs import AegisCA
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
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
