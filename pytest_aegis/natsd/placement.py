"""Whether JetStream can place a stream on every live node of a cluster yet.

A JetStream meta leader places a stream's replicas only on the peers it has had a statistics
update (``STATSZ``) from.  A node that just started, or whose routes just came back after a
partition, is routed to, current in the meta group and healthy before its next update reaches the
leader (nats-server sends them on a timer, 250 ms after start and then less and less often); until
then, making a stream with a replica on every node fails with "no suitable peers for placement,
peer offline" (``err_code`` 10005).  No monitoring endpoint shows the leader's view, so
:func:`wait_for_placement` asks as a test would: it makes a small memory stream with one replica
per live node, until the leader accepts it, and deletes it.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from pytest_aegis.waiting import async_wait_until

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import StreamInfo

#: JetStream's "no suitable peers for placement" (``JSClusterNoPeersErr``).
NO_PEERS = 10005
#: Seconds one JetStream request of the probe may take.
REQUEST_TIMEOUT = 2.0


async def wait_for_placement(nc: Client, replicas: int, *, timeout: float, where: str) -> None:
    """Until ``nc``'s JetStream places a stream on ``replicas`` nodes; the probe stream (memory,
    one message at most, its name starting ``AEGIS_PLACEMENT_``) is deleted before returning.
    :class:`~pytest_aegis.errors.WaitTimeout` with the leader's last refusal."""
    import nats.errors
    import nats.js.errors
    from nats.js.api import StorageType, StreamConfig

    name = f"AEGIS_PLACEMENT_{secrets.token_hex(4).upper()}"
    config = StreamConfig(
        name=name,
        subjects=[f"_aegis.placement.{name}"],
        num_replicas=replicas,
        storage=StorageType.MEMORY,
        max_msgs=1,
        description="pytest-aegis: placement probe, deleted at once",
    )
    js = nc.jetstream(timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + timeout
    electing = (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError)

    async def make() -> StreamInfo | nats.js.errors.BadRequestError:
        try:
            return await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == NO_PEERS:
                return exc  # not yet: the leader has not heard from every node
            raise

    async def delete() -> bool:
        try:
            return await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            return True  # a create that timed out never happened

    try:
        await async_wait_until(
            make,
            f"JetStream of {where} to place a stream on {replicas} nodes",
            timeout=timeout,
            ok=lambda made: not isinstance(made, Exception),
            transient=electing,
            interval=0.02,
            max_interval=0.2,
            hint="the meta leader places replicas only on nodes it has had a statistics update from",
        )
    finally:
        await async_wait_until(
            delete,
            f"the placement probe {name} on {where} to be deleted",
            timeout=max(deadline - time.monotonic(), REQUEST_TIMEOUT * 2),
            transient=electing,
        )
