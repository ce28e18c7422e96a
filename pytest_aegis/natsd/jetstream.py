"""JetStream isolated per test on the session's shared servers.

A shared server lives for the session, and streams are not per test the way ``postgres_db``'s
databases are: a stream, durable consumer or KV bucket (a ``KV_`` stream) one test made would be
there for the next (a later test once found 303 messages and a durable consumer it never made).
So before each test the harness notes what each running shared server holds (:func:`read_state`,
from the server's monitoring endpoint: one HTTP request, no client), and after it removes what the
test added (:func:`added`, then :func:`remove`): new streams (and so KV buckets and object stores),
and new consumers of streams that were there before.  What existed before the test is untouched,
messages included.  A stream deleted and made again by the test counts as new (it has a new
creation time).  A test marked ``nats_keep_jetstream`` keeps what it made.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_aegis.natsd.monitor import monitor_get

if TYPE_CHECKING:
    from pytest_aegis.natsd.server import NatsServer

#: Seconds a monitoring request or the removal may take.
TIMEOUT = 10.0

StreamKey = tuple[str, str]  # (account, stream)
ConsumerKey = tuple[str, str, str]  # (account, stream, consumer)


@dataclass(frozen=True)
class JetStreamState:
    """What a server's JetStream holds: each stream and consumer with its creation time."""

    streams: Mapping[StreamKey, str] = field(default_factory=dict)
    consumers: Mapping[ConsumerKey, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Added:
    """What a test added: streams (by account), and consumers of streams that were there before."""

    streams: tuple[StreamKey, ...] = ()
    consumers: tuple[ConsumerKey, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.streams or self.consumers)

    def describe(self) -> str:
        parts = [f"stream {name}" for _, name in self.streams]
        parts += [f"consumer {stream}/{name}" for _, stream, name in self.consumers]
        return ", ".join(parts)


def parse_jsz(doc: Mapping[str, Any]) -> JetStreamState:
    """The state in a ``/jsz?accounts=true&streams=true&consumers=true`` reply."""
    streams: dict[StreamKey, str] = {}
    consumers: dict[ConsumerKey, str] = {}
    for account in doc.get("account_details") or ():
        name = str(account.get("name") or account.get("id") or "")
        for stream in account.get("stream_detail") or ():
            key = (name, str(stream.get("name")))
            streams[key] = str(stream.get("created", ""))
            for consumer in stream.get("consumer_detail") or ():
                consumers[(*key, str(consumer.get("name")))] = str(consumer.get("created", ""))
    return JetStreamState(streams, consumers)


_JSZ = "/jsz?accounts=true&streams=true&consumers=true"


def read_state(monitor_url: str, *, timeout: float = TIMEOUT) -> JetStreamState:
    """What the server at ``monitor_url`` holds now; :class:`OSError` if it does not answer."""
    return parse_jsz(monitor_get(monitor_url, _JSZ, timeout=timeout))


def added(before: JetStreamState, after: JetStreamState) -> Added:
    """What is in ``after`` and was not in ``before`` (a consumer only when its stream stays)."""
    streams = tuple(key for key, created in after.streams.items() if before.streams.get(key) != created)
    gone = set(streams)
    consumers = tuple(
        key
        for key, created in after.consumers.items()
        if key[:2] not in gone and before.consumers.get(key) != created
    )
    return Added(streams, consumers)


async def remove(server: NatsServer, what: Added, *, timeout: float = TIMEOUT) -> list[str]:
    """Delete ``what`` as the server's default user; return what it could not delete, each with
    the reason (in another account than that user's, or not permitted to it)."""
    import nats.errors
    import nats.js.errors

    nc = await server.connect(deadline=timeout)
    js = nc.jetstream(timeout=timeout)
    failed = []
    deletions: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (f"consumer {stream}/{name}", functools.partial(js.delete_consumer, stream, name))
        for _, stream, name in what.consumers
    ]
    deletions += [
        (f"stream {stream}", functools.partial(js.delete_stream, stream)) for _, stream in what.streams
    ]
    try:
        for label, delete in deletions:
            try:
                await delete()
            except nats.js.errors.NotFoundError:
                failed.append(f"{label} (not in the account of the server's default user)")
            except (nats.js.errors.APIError, nats.errors.TimeoutError) as exc:
                failed.append(f"{label} ({type(exc).__name__}: {exc})")
        return failed
    finally:
        await nc.close()


def _state(server: NatsServer) -> JetStreamState | None:
    """The server's state, or ``None`` when it has none to compare (no JetStream, no monitoring
    endpoint: the external backend's; not running, or not answering)."""
    monitor = server.monitor_url
    if not server.spec.jetstream or monitor is None or not server.is_running:
        return None
    try:
        return read_state(monitor)
    except (OSError, ValueError):  # ValueError: not JSON
        return None


class Isolation:
    """One test's isolation: :meth:`begin` before it (after the wider-scoped fixtures, whose
    streams stay), :meth:`end` after it (after its own fixtures: the service under test has
    stopped)."""

    def __init__(self, servers: list[NatsServer]) -> None:
        self._known = set(servers)
        self._before = {server: state for server in servers if (state := _state(server)) is not None}

    def end(self, servers: list[NatsServer]) -> list[str]:
        """Remove what the test made on ``servers`` (those started during the test: everything);
        return a line for each server where some of it could not be removed."""
        from pytest_aegis.aio import run_sync

        problems = []
        for server in servers:
            if server in self._known and server not in self._before:
                continue  # no state before the test to compare against
            after = _state(server)
            what = added(self._before.get(server, JetStreamState()), after) if after else Added()
            if what:
                failed = run_sync(functools.partial(remove, server, what))
                if failed:
                    problems.append(f"{server.name}: {'; '.join(failed)}")
        return problems
