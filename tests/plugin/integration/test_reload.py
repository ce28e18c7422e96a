"""reload(**changes) on real servers: the config rewritten, the server signalled (SIGHUP locally,
through the engine on docker), and the new state in force once it logged that it reloaded: new
passwords and users, changed permissions, a rotated server certificate; a bad change is refused
naming it, and a config the server rejects leaves everything as it was."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from cryptography import x509

from pytest_aegis import (
    ExternalServerError,
    NatsCluster,
    NatsReloadError,
    NatsServer,
    SpecError,
    assert_connection_rejected,
    assert_permission_denied,
    assert_permitted,
)
from pytest_aegis.backends.external.nats import ExternalNatsRuntime, ServerFacts
from pytest_aegis.natsd.material import prepare
from pytest_aegis.natsd.spec import NatsSpec
from tests.nats_support import client_id, peer_serial

pytestmark = pytest.mark.aegis_backends(
    "local", "docker", reason="the external backend's server is not ours to reload"
)
RELOADED = "Reloaded server configuration"


def file_serial(server: NatsServer) -> int:
    assert server.material.server_files is not None
    return x509.load_pem_x509_certificate(server.material.server_files.cert.read_bytes()).serial_number


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_password_changed_on_reload_refuses_the_old_one_and_the_handle_has_the_new(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    old = server.credentials["password"]
    lines = server.reload(password="rotated-password-1")
    assert RELOADED in lines[-1] and any("authorization users" in line for line in lines), lines

    await assert_connection_rejected(server, reason="auth", password=old)
    assert server.credentials["password"] == "rotated-password-1"
    assert server.env()["AEGIS_NATS_PASSWORD"] == "rotated-password-1"
    nc = await server.connect()  # the handle's credentials are the new ones
    await nc.close()

    server.restart()  # a restart renders the reloaded config
    nc = await server.connect()
    await nc.close()
    await assert_connection_rejected(server, reason="auth", password=old)


@pytest.mark.asyncio
async def test_a_connection_whose_password_no_longer_holds_is_closed_by_the_reload(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    disconnected, closed = asyncio.Event(), asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    async def on_close() -> None:
        closed.set()

    nc = await server.connect(name="aegis-reload-victim", disconnected_cb=on_disconnect, closed_cb=on_close)
    try:
        await nc.flush()
        cid = client_id(server, "aegis-reload-victim")
        lines = server.reload(password="rotated-password-2")
        # The server re-checked the open connection against the new users and refused it ...
        refused = [line for line in lines if f" - cid:{cid} - " in line]
        assert refused and 'authentication error - User "aegis"' in refused[0], lines
        # ... with an authorization violation, after which nats-py gives up on it (no reconnect).
        await asyncio.wait_for(asyncio.gather(disconnected.wait(), closed.wait()), 5)
        assert isinstance(nc.last_error, nats.errors.AuthorizationError), repr(nc.last_error)
        assert nc.is_closed
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_users_added_and_removed_on_reload(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="userpass", users={"alice": {"password": "alice-password"}})
    default_password = server.credentials["password"]
    server.reload(users={"bob": {}, "carol": {"password": "carol-password"}})

    assert server.users == ("bob", "carol")
    await assert_connection_rejected(server, reason="auth", user="alice", password="alice-password")
    with pytest.raises(KeyError, match="no user 'alice'"):
        server.connect_kwargs(as_user="alice")
    for user in ("bob", "carol"):
        nc = await server.connect(as_user=user)
        await nc.close()
    assert server.connect_kwargs(as_user="carol")["password"] == "carol-password"
    assert server.credentials["password"] == default_password, "the default user was not changed"
    nc = await server.connect()
    await nc.close()


@pytest.mark.asyncio
async def test_permissions_changed_on_reload_deny_what_was_allowed(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    nc = await server.connect()
    try:
        await assert_permitted(nc, "orders.new")
        server.reload(permissions={"publish": {"deny": ["orders.>"]}})
        assert server.spec.permissions is not None
        await assert_permission_denied(nc, "orders.new")  # the open connection: new rules
        fresh = await server.connect()
        try:
            await assert_permission_denied(fresh, "orders.new")
            await assert_permitted(fresh, "status.ok")
        finally:
            await fresh.close()
    finally:
        await nc.close()


# -- the server certificate -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_rotation_to_a_new_valid_certificate_keeps_tls_clients_connecting(
    nats_server_factory: Any,
) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    before = await server.connect()
    try:
        old_serial = peer_serial(before)
        assert old_serial == file_serial(server)
        lines = server.reload(server_cert="valid")
        assert any("tls" in line.lower() for line in lines), lines

        after = await server.connect()  # verified against the session CA, as before
        try:
            assert peer_serial(after) == file_serial(server) != old_serial, "a new certificate"
        finally:
            await after.close()
        await before.flush()  # the connection made before the rotation carries on
        assert server.spec.server_cert == "valid"
    finally:
        await before.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "match"),
    [("expired", "certificate has expired"), ("untrusted", "unable to get local issuer certificate")],
)
async def test_a_rotation_to_a_bad_certificate_fails_new_clients_on_tls(
    nats_server_factory: Any, kind: str, match: str
) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    nc = await server.connect()
    await nc.close()
    server.reload(server_cert=kind)
    assert server.spec.server_cert == kind
    error = await assert_connection_rejected(server, reason="tls", match=match)
    assert "certificate verify failed" in str(error)


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_bad_change_is_refused_naming_it_and_nothing_changes(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="userpass", tls=True)
    password, size = server.credentials["password"], server.log_size()
    with pytest.raises(SpecError, match=r"unknown change\(s\) 'colour'; valid changes: password") as info:
        server.reload(colour="red")
    assert "server_cert (" in str(info.value)
    with pytest.raises(SpecError, match=r"server_cert: .*'selfsigned'") as info:
        server.reload(server_cert="selfsigned")
    assert "valid changes:" in str(info.value) and "valid keywords" not in str(info.value)
    with pytest.raises(SpecError, match="password must be a non-empty string"):
        server.reload(password="")
    assert server.log_size() == size, "nothing was signalled"

    # A config nats-server itself rejects: the error carries its line, the old config stays.
    with pytest.raises(NatsReloadError, match=r'"orders\.\.new" is not a valid subject') as failed:
        server.reload(password="never-applied", permissions={"publish": ["orders..new"]})
    assert any("Failed to reload server configuration" in line for line in failed.value.server_lines)
    assert server.credentials["password"] == password and server.spec.permissions is None
    nc = await server.connect()
    await nc.close()
    server.restart()  # the config on disk is the old one again
    nc = await server.connect()
    await nc.close()


def test_credentials_change_on_reload_with_userpass_only(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="token", tls=False)
    with pytest.raises(SpecError, match=r"password can change on reload with auth='userpass' only.*'token'"):
        server.reload(password="x")
    with pytest.raises(SpecError, match="server_cert needs a TLS server"):
        server.reload(server_cert="valid")


def test_a_paused_server_is_not_reloaded(nats_server_factory: Any) -> None:
    server = nats_server_factory(auth="userpass", tls=False)
    password = server.credentials["password"]
    with server.paused(), pytest.raises(NatsReloadError, match="paused"):
        server.reload(password="while-paused")
    assert server.credentials["password"] == password


def test_the_external_backend_refuses_to_reload(tmp_path: Path) -> None:
    material = prepare(NatsSpec(auth="userpass", tls=False), tmp_path, None)
    url = "nats://127.0.0.1:4222"
    target = types.SimpleNamespace(url=url, urls=(url,), shown=url, host="127.0.0.1", port=4222)
    facts = ServerFacts("2.15.1", "theirs", tls_required=False, jetstream=True, streams=frozenset())
    server = NatsServer(ExternalNatsRuntime(target, facts, name="external"), material)  # type: ignore[arg-type]
    password = server.credentials["password"]
    with pytest.raises(ExternalServerError, match=r"reload\(\) is not available.*not ours to reload"):
        server.reload(password="theirs-to-change")
    assert server.credentials["password"] == password


# -- clusters -----------------------------------------------------------------------------------


@pytest.mark.nats_cluster(size=3)
@pytest.mark.asyncio
async def test_a_cluster_node_reloads_alone(nats_cluster: NatsCluster) -> None:
    old = nats_cluster.nodes[1].credentials["password"]
    nats_cluster.reload(1, password="node-1-only")
    await assert_connection_rejected(nats_cluster.nodes[1], reason="auth", password=old)
    for index, node in enumerate(nats_cluster.nodes):
        assert node.credentials["password"] == ("node-1-only" if index == 1 else old)
        nc = await node.connect()
        await nc.close()
    await nats_cluster.wait_until_healthy()  # the routes have their own credentials
