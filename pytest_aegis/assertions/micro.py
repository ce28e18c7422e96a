"""The NATS services protocol (ADR-32, what ``nats.micro`` and every official client's service API
implement): a service named ``orders`` answers ``$SRV.PING.orders``, ``$SRV.INFO.orders`` and
``$SRV.STATS.orders`` (and the same with its instance id appended, or with no name at all) with
JSON documents of the types ``io.nats.micro.v1.ping_response``, ``...info_response`` and
``...stats_response``.

:func:`assert_micro_service` checks a service's INFO (its endpoints, its version);
:func:`micro_stats` reads its STATS; :func:`assert_micro_ping` is the readiness check ``aegis_app``
uses when ``aegis_app_health_subject`` is ``$SRV.PING`` (or ``$SRV.PING.<name>``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from nats.aio.client import Client

from pytest_aegis.assertions.replies import Judge, first_match

PREFIX = "$SRV"
PING_TYPE = "io.nats.micro.v1.ping_response"
INFO_TYPE = "io.nats.micro.v1.info_response"
STATS_TYPE = "io.nats.micro.v1.stats_response"
PING_SUBJECT = f"{PREFIX}.PING"


def micro_name(health_subject: str) -> tuple[bool, str | None]:
    """Whether ``health_subject`` means the services protocol, and the service name it names:
    ``$SRV.PING`` -> ``(True, None)`` (the harness's service name), ``$SRV.PING.orders`` ->
    ``(True, "orders")``, anything else ``(False, None)``."""
    if health_subject == PING_SUBJECT:
        return True, None
    if health_subject.startswith(PING_SUBJECT + "."):
        return True, health_subject.removeprefix(PING_SUBJECT + ".").split(".")[0]
    return False, None


def _identity(kind: str, name: str, *, exclude_ids: Collection[str] = ()) -> Judge:
    def judge(doc: dict[str, Any]) -> str | None:
        problems = []
        if doc.get("type") != kind:
            problems.append(f"type={doc.get('type')!r}, not {kind!r}")
        if doc.get("name") != name:
            problems.append(f"name={doc.get('name')!r}")
        if doc.get("id") in exclude_ids:
            problems.append(f"id={doc.get('id')!r} is another instance's")
        return "; ".join(problems) or None

    return judge


async def assert_micro_ping(
    nc: Client, name: str, *, within: float = 1.0, exclude_ids: Collection[str] = ()
) -> dict[str, Any]:
    """Assert that a service ``name`` answers ``$SRV.PING.<name>`` within ``within`` seconds with
    a valid ping reply (from an instance whose id is not in ``exclude_ids``); return the reply."""
    subject = f"{PING_SUBJECT}.{name}"
    replies = await first_match(
        nc, subject, _identity(PING_TYPE, name, exclude_ids=exclude_ids), within=within
    )
    if replies.match is None:
        raise AssertionError(
            f"services protocol: expected a {PING_TYPE} from {name!r} on {subject!r} within "
            f"{within * 1000:.0f} ms; replies seen:\n  {replies.seen()}"
        )
    return replies.match


def _endpoint_problems(doc: dict[str, Any], expected: Iterable[str] | Mapping[str, str]) -> str | None:
    seen = {str(e.get("name")): str(e.get("subject")) for e in doc.get("endpoints") or ()}
    if isinstance(expected, Mapping):
        if dict(expected) != seen:
            return f"endpoints (name: subject) {seen}, expected {dict(expected)}"
    elif set(expected) != set(seen):
        return f"endpoints {sorted(seen)}, expected {sorted(set(expected))}"
    return None


async def assert_micro_service(
    nc: Client,
    name: str,
    *,
    endpoints: Iterable[str] | Mapping[str, str] | None = None,
    version: str | None = None,
    within: float = 1.0,
) -> dict[str, Any]:
    """Assert that the service ``name`` answers ``$SRV.INFO.<name>`` within ``within`` seconds,
    with ``version`` (if given) and exactly ``endpoints`` (if given: endpoint names, or a mapping
    of name to subject); return its INFO.  A mismatch raises ``AssertionError`` listing each
    reply seen and what differed."""
    expected = list(endpoints) if endpoints is not None and not isinstance(endpoints, Mapping) else endpoints
    base = _identity(INFO_TYPE, name)

    def judge(doc: dict[str, Any]) -> str | None:
        problems = [problem for problem in (base(doc),) if problem]
        if version is not None and doc.get("version") != version:
            problems.append(f"version={doc.get('version')!r}, expected {version!r}")
        if expected is not None and (problem := _endpoint_problems(doc, expected)):
            problems.append(problem)
        return "; ".join(problems) or None

    subject = f"{PREFIX}.INFO.{name}"
    replies = await first_match(nc, subject, judge, within=within)
    if replies.match is None:
        raise AssertionError(
            f"services protocol: expected the INFO of {name!r} on {subject!r} within {within * 1000:.0f} ms"
            f"{f' with version {version!r}' if version else ''}"
            f"{f' and endpoints {expected}' if expected is not None else ''}; replies seen:"
            f"\n  {replies.seen()}"
        )
    return replies.match


async def micro_stats(nc: Client, name: str, *, within: float = 1.0) -> dict[str, Any]:
    """The STATS of the service ``name`` (``$SRV.STATS.<name>``: per endpoint ``num_requests``,
    ``num_errors``, ``processing_time``, ...); ``AssertionError`` if none arrives within ``within``."""
    subject = f"{PREFIX}.STATS.{name}"
    replies = await first_match(nc, subject, _identity(STATS_TYPE, name), within=within)
    if replies.match is None:
        raise AssertionError(
            f"services protocol: expected the STATS of {name!r} on {subject!r} within "
            f"{within * 1000:.0f} ms; replies seen:\n  {replies.seen()}"
        )
    return replies.match
