"""The assertion a fault test of JetStream ends with: every write the server acknowledged is in
the stream, exactly once (:func:`assert_no_acked_write_lost`).

Writes are told apart by a header each carries (``Nats-Msg-Id`` by default, which also lets the
server drop a retried publish as a duplicate).  The stream is read message by message (direct
gets by sequence), after it has a leader again: a check run right after a failover waits for the
election instead of failing on it.  The verdict (:func:`describe_acked`) is pure and names the
missing and the duplicated ids, the ids stored that were never acknowledged (a publish that
timed out but was stored: not a loss), and the stream's state.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Iterable

import nats.errors
from nats.aio.client import Client
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError, ServiceUnavailableError

from pytest_aegis.waiting import async_wait_until

SHOW = 10
#: Direct gets in flight at once while the stream is read.
READ_BATCH = 200


def describe_acked(
    stream: str, acked: Collection[str], stored: Counter[str], *, state: str, header: str, show: int = SHOW
) -> str | None:
    """``None`` when every acknowledged id is stored exactly once, else the failure message."""
    wanted = list(dict.fromkeys(acked))
    missing = [key for key in wanted if stored[key] == 0]
    duplicated = {key: stored[key] for key in wanted if stored[key] > 1}
    if not missing and not duplicated:
        return None
    known = set(wanted)
    unacked = [key for key in stored if key not in known]
    lines = [
        f"stream {stream}: {len(wanted)} acknowledged write(s) ({header}), "
        f"{len(wanted) - len(missing) - len(duplicated)} stored exactly once",
        f"  lost (acknowledged, not in the stream): {len(missing)} {missing[:show]}",
        f"  duplicated: {len(duplicated)} {dict(list(duplicated.items())[:show])}",
        f"  stored but never acknowledged (not a loss): {len(unacked)} {unacked[:show]}",
        f"  stream state: {state}",
    ]
    return "\n".join(lines)


#: What a stream's requests may meet while it has no leader (after a failover, a restart).
TRANSIENT = (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError)


async def stream_info(nc: Client, stream: str, *, within: float) -> StreamInfo:
    """``stream``'s info once it answers (``within`` seconds: a failover's election included)."""
    js = nc.jetstream(timeout=2)
    info: StreamInfo = await async_wait_until(
        lambda: js.stream_info(stream),
        f"stream {stream} to answer (a leader elected)",
        timeout=within,
        transient=TRANSIENT,
        interval=0.05,
        hint="a stream answers once a majority of its replicas' nodes run and route to each other",
    )
    return info


async def stored_ids(
    nc: Client, stream: str, *, header: str = "Nats-Msg-Id", within: float = 30
) -> Counter[str]:
    """How many times each ``header`` value is stored in ``stream`` (messages without it are not
    counted), read once the stream answers (``within`` seconds)."""
    js = nc.jetstream(timeout=2)
    info = await stream_info(nc, stream, within=within)

    async def get(seq: int) -> str | None:
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:  # deleted, or a gap
            return None
        return (msg.headers or {}).get(header)

    async def header_of(seq: int) -> str | None:
        return await async_wait_until(
            lambda: get(seq),
            f"message {seq} of stream {stream}",
            timeout=within,
            ok=lambda _: True,
            transient=TRANSIENT,
        )

    counts: Counter[str] = Counter()
    if not info.state.messages:
        return counts
    first, last = info.state.first_seq, info.state.last_seq
    for start in range(first, last + 1, READ_BATCH):
        batch = range(start, min(start + READ_BATCH, last + 1))
        counts.update(
            key for key in await asyncio.gather(*(header_of(seq) for seq in batch)) if key is not None
        )
    return counts


async def assert_no_acked_write_lost(
    nc: Client, stream: str, acked: Iterable[str], *, header: str = "Nats-Msg-Id", within: float = 30
) -> Counter[str]:
    """Assert that every write to ``stream`` the server acknowledged (``acked``: the ``header``
    values of the publishes whose ack arrived) is stored in it exactly once, read through ``nc``
    once the stream answers (``within`` seconds).  Writes stored but never acknowledged (a publish
    whose ack was lost) are reported, not failed.  Returns what is stored (id -> count).

    Fails (:class:`AssertionError`) with the lost and duplicated ids and the stream's state; and
    when ``acked`` is empty, as a check of nothing proves nothing."""
    wanted = list(acked)
    if not wanted:
        raise AssertionError(
            f"assert_no_acked_write_lost({stream!r}): no acknowledged write to check; the workload "
            "wrote nothing that was acknowledged, so this check could not fail"
        )
    stored = await stored_ids(nc, stream, header=header, within=within)
    info = await stream_info(nc, stream, within=within)
    state = (
        f"{info.state.messages} message(s), sequences {info.state.first_seq}..{info.state.last_seq}, "
        f"leader {info.cluster.leader if info.cluster else '-'}"
    )
    message = describe_acked(stream, wanted, stored, state=state, header=header)
    if message is not None:
        raise AssertionError(message)
    return stored
