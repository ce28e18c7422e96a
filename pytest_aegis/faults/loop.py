"""An asyncio loop on a thread of its own, called from synchronous code with a deadline."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pytest_aegis.errors import ProxyError

T = TypeVar("T")

#: Seconds a call into the loop may take (they are all quick: state changes, a bind).
CALL_TIMEOUT = 5.0


class LoopThread:
    """A daemon thread running an event loop until :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        """Run the coroutine ``make()`` on the loop; its result (or its exception)."""

        if self.loop.is_closed():
            raise ProxyError(f"{self._thread.name}: its loop is closed")

        async def wrapped() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ProxyError(f"{self._thread.name}: no answer from its loop within {timeout:.0f}s") from None

    def call(self, function: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Call ``function()`` on the loop (where the proxy's state lives); its result."""

        async def wrapped() -> T:
            return function()

        return self.run(wrapped, timeout)

    def close(self, timeout: float = CALL_TIMEOUT) -> None:
        """Cancel what still runs, stop the loop and join the thread (at most ``timeout`` s)."""

        def stop() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
