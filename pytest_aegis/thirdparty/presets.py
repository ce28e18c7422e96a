"""The third-party servers the harness knows without a declaration: ``aegis_server_factory("redis")``
works as is (an ``aegis_servers`` line of the same name changes what it sets)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pytest_aegis.app.health import PROBE_TIMEOUT, CustomProbe, ProbeTarget
from pytest_aegis.thirdparty.spec import ServerSpec

#: What Redis answers ``PING`` with once it serves commands (``-LOADING``: still loading its data).
PONG = b"+PONG\r\n"


async def redis_ping(target: ProbeTarget) -> dict[str, int]:
    """``PING`` answered ``+PONG`` on the instance's port: Redis serves commands."""
    port = target.port
    assert port is not None, "needs_port: the harness leases the instance a port"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), PROBE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise AssertionError(f"connect to 127.0.0.1:{port}: {exc or 'timed out'}") from None
    try:
        writer.write(b"PING\r\n")
        answer = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise AssertionError(f"PING to 127.0.0.1:{port}: {exc or 'no answer'}") from None
    finally:
        writer.close()
    if answer != PONG:
        raise AssertionError(f"PING to 127.0.0.1:{port} answered {answer!r}, not {PONG!r}")
    return {"port": port}


REDIS = ServerSpec(
    name="redis",
    binary="redis-server",
    # No persistence (a test's keys die with it); protected mode off is safe on 127.0.0.1 only.
    args=("--port", "{port}", "--bind", "{host}", "--save", "", "--appendonly", "no", "--dir", "{dir}"),
    image="redis:7",
    image_args=("--port", "{port}", "--bind", "{host}", "--save", "", "--appendonly", "no"),
    health=CustomProbe(redis_ping, "a +PONG answer to PING"),
    ready_pattern=r"Ready to accept connections",
    url="redis://{host}:{port}",
    install_hint=(
        "install Redis's server: `apt-get install redis-server` (Debian/Ubuntu), `brew install redis`, "
        "or name the executable with `binary=` in the aegis_servers line for redis"
    ),
)

#: The servers known by name.
PRESETS: Mapping[str, ServerSpec] = {spec.name: spec for spec in (REDIS,)}
