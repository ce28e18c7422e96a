"""``python -m aegis_service migrate up|down [--steps N] [--target N]`` against ``AEGIS_DATABASE_URL``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import psycopg

from aegis_service.migrations.runner import MigrationError, current_version, downgrade, head, upgrade

ENV = "AEGIS_DATABASE_URL"
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aegis_service migrate",
        description=f"Apply or revert the service's schema migrations on ${ENV}.",
    )
    parser.add_argument("direction", choices=("up", "down", "status"))
    parser.add_argument(
        "--steps", type=int, default=1, help="down: how many migrations to revert (default 1)"
    )
    parser.add_argument("--target", type=int, default=None, help="up: stop at this version (default: head)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    dsn = os.environ.get(ENV, "").strip()
    if not dsn:
        print(f"aegis-service: configuration error: {ENV}: required for migrate", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.direction == "up":
            upgrade(dsn, args.target)
        elif args.direction == "down":
            downgrade(dsn, args.steps)
        version = current_version(dsn)
    except (MigrationError, psycopg.Error) as exc:
        print(f"aegis-service: migrate {args.direction} failed: {exc}".rstrip(), file=sys.stderr)
        return EXIT_FAILURE
    print(f"schema version {version} (head {head()})", file=sys.stderr)
    return 0
