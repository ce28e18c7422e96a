"""The plugin's markers, each defined once.

``nats_secure``'s keywords, values and help line come from
:class:`~pytest_aegis.natsd.spec.NatsSpec` (:func:`~pytest_aegis.natsd.spec.marker_help`);
``aegis_backends`` limits a test to some backends.  Every ``nats_secure`` marker is validated
when the session is collected, so a bad one is one usage error, not a failure per test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

from pytest_aegis.errors import SpecError

if TYPE_CHECKING:  # the spec (pydantic) loads when a marker is read, not when the plugin loads
    from pytest_aegis.natsd.spec import NatsSpec

MARKER = "nats_secure"
#: A fresh NATS cluster per test: ``nats_cluster(size=3, **nats_secure keywords)``.
CLUSTER_MARKER = "nats_cluster"
DEFAULT_CLUSTER_SIZE = 3
BACKENDS_MARKER = "aegis_backends"
#: Keeps the streams, consumers and KV buckets a test made on a shared NATS server.
KEEP_JETSTREAM_MARKER = "nats_keep_jetstream"
_SPEC = pytest.StashKey["NatsSpec"]()
_CLUSTER = pytest.StashKey["tuple[int, NatsSpec]"]()


def marker_lines(*, full: bool) -> tuple[str, ...]:
    """The ``markers`` ini lines the plugin registers.  ``full`` (``pytest --markers``): the
    ``nats_secure`` line with every keyword and its values, derived from the spec; otherwise a
    short line (only the name counts for ``--strict-markers``) so that loading the plugin costs
    no import of the spec."""
    if full:
        from pytest_aegis.natsd.spec import marker_help

        spec_line = marker_help()
    else:
        spec_line = f"{MARKER}(**keywords): a secured NATS server of this spec; `pytest --markers` lists them"
    return (
        spec_line,
        f"{CLUSTER_MARKER}(size={DEFAULT_CLUSTER_SIZE}, **keywords): a fresh NATS cluster of size nodes "
        f"for this test (nats_cluster fixture), nodes of the spec the {MARKER} keywords give (routes "
        "secured too)",
        f"{BACKENDS_MARKER}(*names, reason=''): run the test only on these backends (local, docker, "
        "external); skipped on the others with the reason",
        f"{KEEP_JETSTREAM_MARKER}: keep the streams, consumers and KV buckets this test makes on a shared "
        "NATS server (by default they are removed after it)",
    )


def nats_marker(item: pytest.Item) -> str | None:
    """The marker that gives the test its own NATS (``nats_cluster`` before ``nats_secure``), if any:
    without one, the test's NATS is the session's plain ``nats_server``."""
    return next((name for name in (CLUSTER_MARKER, MARKER) if item.get_closest_marker(name)), None)


def spec_for(item: pytest.Item) -> NatsSpec | None:
    """The validated spec of ``item``'s ``nats_secure`` marker (``None`` without one)."""
    if _SPEC in item.stash:
        return item.stash[_SPEC]
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    from pytest_aegis.natsd.spec import build_spec

    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER} takes keywords only, e.g. "
            f"@pytest.mark.{MARKER}(auth='token', tls=True); got positional {marker.args!r}"
        )
    item.stash[_SPEC] = spec = build_spec(marker.kwargs, where=f"{item.nodeid}: @pytest.mark.{MARKER}")
    return spec


def cluster_for(item: pytest.Item) -> tuple[int, NatsSpec] | None:
    """``(size, spec)`` of ``item``'s ``nats_cluster`` marker (``None`` without one)."""
    if _CLUSTER in item.stash:
        return item.stash[_CLUSTER]
    marker = item.get_closest_marker(CLUSTER_MARKER)
    if marker is None:
        return None
    where = f"{item.nodeid}: @pytest.mark.{CLUSTER_MARKER}"
    if marker.args:
        raise SpecError(f"{where} takes keywords only, e.g. (size=3, auth='token'); got {marker.args!r}")
    item.stash[_CLUSTER] = found = cluster_spec(dict(marker.kwargs), where=where)
    return found


def cluster_spec(keywords: dict[str, object], *, where: str) -> tuple[int, NatsSpec]:
    """``size`` (default :data:`DEFAULT_CLUSTER_SIZE`) and the nodes' spec from the other keywords."""
    from pytest_aegis.natsd.cluster import SIZES
    from pytest_aegis.natsd.spec import build_spec

    size = keywords.pop("size", DEFAULT_CLUSTER_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or size not in SIZES:
        raise SpecError(f"{where}: size={size!r}: a cluster has {SIZES.start} to {SIZES.stop - 1} nodes")
    spec = build_spec(keywords, where=where)
    if not spec.jetstream:
        raise SpecError(f"{where}: a cluster needs JetStream (its health is the JetStream meta leader)")
    return size, spec


def check_specs(items: Iterable[pytest.Item]) -> None:
    """Raise one ``pytest.UsageError`` listing every bad ``nats_secure`` or ``nats_cluster`` marker
    of the session."""
    problems = []
    for item in items:
        for read in (spec_for, cluster_for):
            try:
                read(item)
            except SpecError as exc:
                problems.append(str(exc))
    if problems:
        raise pytest.UsageError("\n".join(problems))


def backend_skip_reason(item: pytest.Item, backend: str) -> str | None:
    """Why ``item`` does not run on ``backend`` (its ``aegis_backends`` marker), or ``None``."""
    marker = item.get_closest_marker(BACKENDS_MARKER)
    if marker is None or backend in marker.args:
        return None
    reason = marker.kwargs.get("reason", "")
    return f"only on the {'/'.join(marker.args)} backend(s), this session uses {backend}" + (
        f": {reason}" if reason else ""
    )
