"""One request, every reply: the loop under the request/reply assertions (health checks, the NATS
services protocol).

:func:`first_match` publishes a request and reads every reply until one is judged a match, the
window closes, or the server says nobody is subscribed ("no responders": no reply can follow, so
it does not wait the window out).  The replies that did not match are kept as near-misses, each
with the reason and its body, for the failure message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

#: ``judge(doc) -> None`` when a reply (a JSON object) matches, else why not.
Judge = Callable[[dict[str, Any]], str | None]

NO_RESPONDERS = "no responders: the server says nobody is subscribed to this subject"


@dataclass
class Replies:
    """What a request got back: the matching reply (``None``: none did) and the near-misses."""

    match: dict[str, Any] | None = None
    near_misses: list[str] = field(default_factory=list)

    def seen(self) -> str:
        """The near-misses for a failure message, one per line."""
        if not self.near_misses:
            return "no reply at all (no responder, or too slow)"
        return "\n  ".join(self.near_misses)


def body(raw: bytes, limit: int = 300) -> str:
    """A reply's body as a near-miss shows it: its text, cut at ``limit`` characters."""
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def judge_reply(raw: bytes, judge: Judge) -> tuple[str | None, dict[str, Any]]:
    """``(None, doc)`` when ``raw`` is a JSON object ``judge`` accepts, else ``(why not, doc)``."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return f"not JSON: {body(raw)}", {}
    if not isinstance(doc, dict):
        return f"not a JSON object: {body(raw)}", {}
    verdict = judge(doc)
    return (None, doc) if verdict is None else (f"{verdict} in the reply {body(raw)}", doc)


async def first_match(
    nc: Client, subject: str, judge: Judge, *, within: float, payload: bytes = b""
) -> Replies:
    """Request ``subject`` once and read replies for up to ``within`` seconds (see the module)."""
    inbox = nc.new_inbox()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def collect(msg: Any) -> None:
        queue.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=collect)
    replies = Replies()
    try:
        await nc.publish(subject, payload, reply=inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                break
            if not msg.data and (msg.headers or {}).get("Status") == "503":
                replies.near_misses.append(NO_RESPONDERS)
                break
            verdict, doc = judge_reply(msg.data, judge)
            if verdict is None:
                replies.match = doc
                break
            replies.near_misses.append(verdict)
    finally:
        await sub.unsubscribe()
    return replies
