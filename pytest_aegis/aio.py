"""Running the harness's coroutines from synchronous code (fixtures, hooks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop
    (on a short-lived thread with its own loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, name="aegis-run-sync")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]
