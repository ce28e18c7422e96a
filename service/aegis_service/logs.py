"""Logging to stderr (stdout carries only the READY line)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(instance)s] %(message)s"


class _InstanceFilter(logging.Filter):
    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self._instance = instance_id[:12]

    def filter(self, record: logging.LogRecord) -> bool:
        record.instance = self._instance
        return True


def configure_logging(level: str, instance_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_InstanceFilter(instance_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # nats-py and uvicorn are chatty below WARNING unless we are debugging
    if level != "DEBUG":
        for name in ("nats", "uvicorn.error"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level]))
