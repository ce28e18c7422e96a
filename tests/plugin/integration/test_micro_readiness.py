"""``aegis_app`` with a service of the NATS services protocol (a ``nats.micro`` service nobody here
wrote): ready when it answers ``$SRV.PING.<name>``, each instance by its own id; a service that
answers with something else fails its start showing what it answered."""

from __future__ import annotations

from typing import Any

from support import run_inner

MICRO = """
import asyncio, os, sys

import nats
from nats.micro import add_service


async def main() -> None:
    nc = await nats.connect(os.environ["AEGIS_NATS_URL"])
    name = sys.argv[1] if len(sys.argv) > 1 else os.environ["AEGIS_SERVICE_NAME"]
    service = await add_service(nc, name=name, version="1.2.3")

    async def echo(request) -> None:
        await request.respond(request.data)

    await service.add_endpoint(name="echo", subject=f"{name}.echo", handler=echo)
    await asyncio.Event().wait()


asyncio.run(main())
"""

#: A service that never answers its health subject itself (the test answers for it).
SILENT = """
import time

time.sleep(600)
"""


def micro_project(inner: Any, subject: str, command: str, script: str = MICRO) -> None:
    inner.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        f"aegis_app_command = {command}\naegis_app_health_subject = {subject}\naegis_app_start_timeout = 10\n"
    )
    (inner.path / "svc.py").write_text(script)


def test_instances_of_a_named_micro_service_are_each_ready_by_their_own_ping(inner: Any) -> None:
    micro_project(inner, "$SRV.PING.orders", "{python} svc.py orders")
    inner.makepyfile("""
        import pytest
        from pytest_aegis import assert_micro_service, micro_stats

        @pytest.mark.asyncio
        async def test_two(aegis_app_factory, nats_client):
            first, second = aegis_app_factory(), aegis_app_factory()
            assert first.micro_id and second.micro_id and first.micro_id != second.micro_id
            assert first.health_reply["type"] == "io.nats.micro.v1.ping_response"
            info = await assert_micro_service(nats_client, "orders", endpoints=["echo"], version="1.2.3")
            assert info["id"] in (first.micro_id, second.micro_id)
            assert (await nats_client.request("orders.echo", b"hi", timeout=2)).data == b"hi"
            stats = await micro_stats(nats_client, "orders")
            assert stats["endpoints"][0]["name"] == "echo"
    """)
    run_inner(inner).assert_outcomes(passed=1)


def test_a_bare_srv_ping_means_the_service_named_by_the_harness(inner: Any) -> None:
    micro_project(inner, "$SRV.PING", "{python} svc.py")  # the service takes AEGIS_SERVICE_NAME
    inner.makepyfile("""
        def test_one(aegis_app):
            assert aegis_app.health_reply["name"] == aegis_app.service_name
            assert aegis_app.micro_id
    """)
    run_inner(inner).assert_outcomes(passed=1)


def test_a_start_that_times_out_shows_the_replies_it_got(inner: Any) -> None:
    # The condition, made before the start: something answers $SRV.PING.orders, but not with a
    # ping reply, from the harness's first probe on (a responder the service would start itself
    # could still be starting when a short start timeout ends, on a busy machine).
    micro_project(inner, "$SRV.PING.orders", "{python} svc.py", SILENT)
    inner.makepyfile("""
        import asyncio

        import pytest

        @pytest.mark.asyncio
        async def test_one(aegis_app_factory, nats_client):
            async def answer(msg):
                await msg.respond(b'{"status": "ok"}')

            await nats_client.subscribe("$SRV.PING.orders", cb=answer)
            await nats_client.flush()
            await asyncio.to_thread(aegis_app_factory)  # this loop answers while the harness waits
    """)
    result = run_inner(inner, "--aegis-app-start-timeout=3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*never answered its health check within 3 s*waiting for an answer on $SRV.PING.orders",
            "*last seen: AssertionError: services protocol: expected a io.nats.micro.v1.ping_response from "
            "'orders' on '$SRV.PING.orders' within 500 ms; replies seen:",
            '*type=None, not \'io.nats.micro.v1.ping_response\'; name=None in the reply {"status": "ok"}*',
        ]
    )
