"""Which NATS errors the service treats as an outage (retried at startup, counted by the breaker)."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from aegis_service.adapters.nats.kv import NO_SUITABLE_PEERS, is_unavailability, outage_hint


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (
            nats.js.errors.BadRequestError(
                code=400, err_code=NO_SUITABLE_PEERS, description="no suitable peers for placement"
            ),
            True,
        ),
        (
            nats.js.errors.BadRequestError(
                code=400, err_code=10058, description="stream name already in use"
            ),
            False,
        ),
        (nats.errors.TimeoutError(), True),
        (nats.js.errors.KeyNotFoundError(), False),
        (nats.js.errors.KeyWrongLastSequenceError(description="wrong last sequence: 1"), False),
    ],
    ids=["no-suitable-peers", "name-in-use", "timeout", "key-not-found", "wrong-last-sequence"],
)
def test_placement_refused_is_an_outage_and_other_answers_are_not(
    error: Exception, unavailable: bool
) -> None:
    assert is_unavailability(error) is unavailable


def test_a_startup_that_gives_up_names_what_to_check_for_its_cause() -> None:
    refused = nats.js.errors.BadRequestError(code=400, err_code=NO_SUITABLE_PEERS, description="no peers")
    assert outage_hint(refused, 3) == (
        "are 3 nodes of the cluster up and routed, for AEGIS_JETSTREAM_REPLICAS=3?"
    )
    assert outage_hint(nats.errors.NoRespondersError(), 1) == "is JetStream enabled on the server?"
