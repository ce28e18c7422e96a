"""No connection the harness opens may hang: every bad server certificate, met by each way a test
connects (``nats_secure.connect()``, the ``nats_client`` fixture, ``aegis_app`` and
``aegis_app_factory``), fails at the first TLS error, naming the reason ``tls``, long before the
deadline it was given; a server that never answers fails at that deadline.

nats-py 2.16's first connect with reconnects allowed never returns after a certificate
verification failure (it awaits the close of a half-upgraded socket); before the fix these
sessions sat until killed."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from support import run_inner

from pytest_aegis.certs import SERVER_CERT_KINDS
from pytest_aegis.errors import NatsConnectError, ServerStartError

BAD_KINDS = [kind for kind in SERVER_CERT_KINDS if kind != "valid"]
#: The deadline each attempt is given (``connect(deadline=)``; the start timeout, which is the
#: fixtures' connect deadline).  A TLS failure ends an attempt at once, in well under a second even
#: with both cores busy, so it must end before half of it: only an attempt that waited for its
#: deadline (or hung) gets there.  A margin of seconds over the deadline would tell neither.
DEADLINE = 30.0


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", BAD_KINDS)
async def test_connect_to_a_server_with_a_bad_certificate_fails_fast_naming_tls(nats_server_factory, kind):
    server = nats_server_factory(server_cert=kind)
    with pytest.raises(NatsConnectError) as info:  # not TimeoutError: cut at half its deadline
        await asyncio.wait_for(server.connect(deadline=DEADLINE), DEADLINE / 2)
    assert info.value.reason == "tls"
    assert "certificate verify failed" in str(info.value)
    assert "(tls)" in str(info.value)


@pytest.mark.asyncio
async def test_connect_gives_up_at_its_deadline_on_a_server_that_never_answers(nats_server_factory):
    server = nats_server_factory(tls=False, auth="token")
    server.kill()  # nothing listens on its port any more: nats-py would retry 100 times
    with pytest.raises(NatsConnectError) as info:  # the wait cut at DEADLINE: only against a hang
        await asyncio.wait_for(server.connect(deadline=1.0), DEADLINE)
    # Ended by its own deadline, which the error names: not by nats-py's retries running out, after
    # 5 s and more ("unreachable"), nor at the default deadline (the start timeout).
    assert info.value.reason == "timeout", info.value
    assert "within 1s (timeout)" in str(info.value), info.value
    assert "Connection refused" in str(info.value) or "Errno 111" in str(info.value)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_the_app_factory_fails_fast_when_the_server_certificate_is_bad(
    aegis_app_factory, nats_server_factory, kind
):
    server = nats_server_factory(server_cert=kind)
    with pytest.raises(ServerStartError) as info:
        aegis_app_factory(nats=server)
    assert info.value.refusal == "tls"
    assert "refused: tls" in str(info.value)


def _param(kind: str) -> str:
    return f"pytest.param({kind!r}, marks=pytest.mark.nats_secure(server_cert={kind!r}))"


def test_fixtures_on_a_server_with_a_bad_certificate_error_fast_naming_tls(inner):
    kinds = ", ".join(_param(kind) for kind in BAD_KINDS)
    inner.makepyfile(f"""
        import pytest

        KINDS = [{kinds}]

        @pytest.mark.asyncio
        @pytest.mark.parametrize("kind", KINDS)
        async def test_client(nats_client, kind):
            pass

        @pytest.mark.parametrize("kind", KINDS)
        def test_app(aegis_app, kind):
            pass
    """)
    report = inner.path / "report.xml"
    result = run_inner(inner, f"--aegis-start-timeout={DEADLINE}", f"--junitxml={report}")
    result.assert_outcomes(errors=2 * len(BAD_KINDS))
    cases = ET.parse(report).getroot().iter("testcase")
    seen = {}
    for case in cases:
        error = case.find("error")
        assert error is not None, f"{case.get('name')} did not error"
        seen[case.get("name")] = (float(case.get("time", "0")), error.get("message", ""))
    assert len(seen) == 2 * len(BAD_KINDS), seen
    for name, (seconds, message) in seen.items():
        # Setup and all (a server's and the service's start): still far from the connect deadline.
        assert seconds < DEADLINE / 2, (
            f"{name} took {seconds:.1f}s, as if it waited for its deadline: {message}"
        )
        wanted = "(tls)" if name.startswith("test_client") else "refused: tls"
        assert wanted in message, f"{name}: {message}"
