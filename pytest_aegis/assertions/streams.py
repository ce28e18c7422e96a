"""What a JetStream stream and its consumers hold now, read the way a test needs it: the number of
messages in a stream (:func:`stream_message_count`) and a consumer that has been handed and has
acknowledged everything (:func:`assert_consumer_drained`).  Both read through a failover (a
stream without a leader answers nothing for a moment) and fail, naming it, on a stream or
consumer that is not there."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from pytest_aegis.assertions.jetstream import TRANSIENT, stream_info
from pytest_aegis.waiting import Poll


async def stream_message_count(nc: Client, stream: str, *, within: float = 30) -> int:
    """How many messages ``stream`` holds now, once it answers (``within`` seconds);
    :class:`AssertionError` naming it when there is no such stream."""
    try:
        info = await stream_info(nc, stream, within=within)
    except NotFoundError:
        raise AssertionError(f"stream_message_count: there is no stream {stream!r}") from None
    return int(info.state.messages)


def _ack_floor(info: ConsumerInfo) -> int:
    """The stream sequence up to which the consumer has acknowledged everything."""
    return info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0


def _progress(info: ConsumerInfo) -> str:
    return (
        f"ack floor at stream sequence {_ack_floor(info)}, {info.num_pending} not yet delivered, "
        f"{info.num_ack_pending} awaiting an ack, {info.num_redelivered} redelivered"
    )


async def assert_consumer_drained(
    nc: Client, stream: str, consumer: str, *, at_least: int = 0, within: float = 10.0
) -> ConsumerInfo:
    """Assert that the durable ``consumer`` of ``stream`` has been handed every message and has
    acknowledged it (nothing pending, nothing awaiting an ack) and, with ``at_least``, that its
    ack floor reached that stream sequence (so a consumer that saw nothing yet is not "drained"),
    within ``within`` seconds.  Returns its info (``num_redelivered``: how many were delivered
    again).  Fails naming the consumer's progress, or the stream's consumers when it is not
    there."""
    js = nc.jetstream(timeout=2)
    seen = "nothing (no read finished)"
    poll = Poll(within, interval=0.01, max_interval=0.1)
    async for _ in poll.aiter():
        try:
            info: ConsumerInfo = await js.consumer_info(stream, consumer)
        except TRANSIENT as exc:
            seen = f"no answer ({type(exc).__name__}: the stream without a leader?)"
            continue
        except NotFoundError:
            names = await _consumers(nc, stream)
            raise AssertionError(
                f"consumer {consumer!r} of stream {stream!r}: not there (its consumers: {names})"
            ) from None
        seen = _progress(info)
        if info.num_pending == 0 and info.num_ack_pending == 0 and _ack_floor(info) >= at_least:
            return info
    floor = f" and an ack floor of at least {at_least}" if at_least else ""
    raise AssertionError(
        f"consumer {consumer!r} of stream {stream!r}: expected nothing pending, nothing awaiting an ack"
        f"{floor} within {within:g}s; seen: {seen}"
    )


async def _consumers(nc: Client, stream: str) -> str:
    """The names of ``stream``'s consumers, for an error (or why there are none)."""
    try:
        names = [info.name for info in await nc.jetstream(timeout=2).consumers_info(stream)]
    except NotFoundError:
        return f"none: there is no stream {stream!r}"
    except TRANSIENT as exc:
        return f"unknown ({type(exc).__name__})"
    return ", ".join(map(repr, names)) or "none"
