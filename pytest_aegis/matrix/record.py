"""What the session proved about its servers' security, as the helpers and fixtures report it.

Each server spec the session ran is a row (:class:`SpecRow`): how many tests connected to one of
its servers, and which negative cases a passing assertion proved against it (a connection
rejected for ``auth`` / ``tls`` / ``mtls``, a ``publish`` / ``subscribe`` denied, the service under
test refused for ``auth`` / ``tls`` / ``permissions``).  What a test records counts only when the
test passes: the :class:`Recorder` holds it per test and the plugin commits it after teardown.

The helpers call the module functions (:func:`connected`, :func:`rejected`, :func:`denied`,
:func:`app_refused`); they find the session's recorder through :func:`active`, so they need no
fixture.  Under xdist each worker records its own tests and the controller merges the rows.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_aegis.natsd.spec import NatsSpec

#: The cases a row can prove, in report order.
CASES = (
    "rejected:auth",
    "rejected:tls",
    "rejected:mtls",
    "denied:publish",
    "denied:subscribe",
    "app-refused:auth",
    "app-refused:tls",
    "app-refused:permissions",
)


@dataclass
class SpecRow:
    """One server spec of the session and what its tests proved."""

    key: str
    label: str
    auth: str
    tls: bool
    mtls: bool
    server_cert: str
    topology: str = "single"
    connected_tests: int = 0
    proved: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, spec: NatsSpec, topology: str = "single") -> SpecRow:
        return cls(
            key=f"{topology}:{spec.model_dump_json()}",
            label=spec.label,
            auth=spec.auth,
            tls=spec.tls,
            mtls=spec.mtls,
            server_cert=spec.server_cert,
            topology=topology,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "auth": self.auth,
            "tls": self.tls,
            "mtls": self.mtls,
            "server_cert": self.server_cert,
            "topology": self.topology,
            "connected_tests": self.connected_tests,
            "proved": {case: self.proved[case] for case in CASES if self.proved[case]},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpecRow:
        proved = Counter({str(k): int(v) for k, v in dict(data.get("proved", {})).items()})
        fields = {k: data[k] for k in ("key", "label", "auth", "tls", "mtls", "server_cert", "topology")}
        return cls(**fields, connected_tests=int(data.get("connected_tests", 0)), proved=proved)

    def merge(self, other: SpecRow) -> None:
        self.connected_tests += other.connected_tests
        self.proved.update(other.proved)


@dataclass
class _Pending:
    """What the running test recorded so far: (row key, case) pairs and rows it connected to."""

    connected: set[str] = field(default_factory=set)
    proved: set[tuple[str, str]] = field(default_factory=set)


class Recorder:
    """The session's matrix (rows by key) and the running test's pending records."""

    def __init__(self) -> None:
        self.rows: dict[str, SpecRow] = {}
        self._pending: _Pending | None = None
        self._clients: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def row(self, spec: NatsSpec, topology: str = "single") -> SpecRow:
        fresh = SpecRow.of(spec, topology)
        return self.rows.setdefault(fresh.key, fresh)

    # -- one test --------------------------------------------------------------------------

    def begin(self) -> None:
        self._pending = _Pending()

    def end(self, passed: bool) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not passed:
            return
        for key in pending.connected:
            self.rows[key].connected_tests += 1
        for key, case in pending.proved:
            self.rows[key].proved[case] += 1

    # -- what helpers record -----------------------------------------------------------------

    def connected(self, spec: NatsSpec, client: Any, topology: str = "single") -> None:
        key = self.row(spec, topology).key
        self._clients[client] = key
        if self._pending is not None:
            self._pending.connected.add(key)

    def proved(self, spec: NatsSpec, case: str, topology: str = "single") -> None:
        if case not in CASES:
            raise ValueError(f"unknown case {case!r}; the cases: {', '.join(CASES)}")
        key = self.row(spec, topology).key
        if self._pending is not None:
            self._pending.proved.add((key, case))

    def proved_on_client(self, client: Any, case: str) -> None:
        """A case proved on a connection the harness opened (its server's row), if it knows it."""
        key = self._clients.get(client)
        if key is not None and self._pending is not None:
            self._pending.proved.add((key, case))

    # -- the session ---------------------------------------------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows.values()]

    def merge_json(self, rows: list[dict[str, Any]]) -> None:
        for data in rows:
            incoming = SpecRow.from_json(data)
            existing = self.rows.get(incoming.key)
            if existing is None:
                self.rows[incoming.key] = incoming
            else:
                existing.merge(incoming)


_ACTIVE: list[Recorder] = []


def activate(recorder: Recorder) -> None:
    """Make ``recorder`` the one the helpers report to (at configure; a stack for nested sessions)."""
    _ACTIVE.append(recorder)


def deactivate(recorder: Recorder) -> None:
    if recorder in _ACTIVE:
        _ACTIVE.remove(recorder)


def active() -> Recorder | None:
    """The session's recorder (``None`` when the helpers run without a session of the plugin)."""
    return _ACTIVE[-1] if _ACTIVE else None


def ran(spec: NatsSpec, topology: str = "single") -> None:
    """A server of ``spec`` (``topology``: ``single`` or ``cluster``) was started (or adopted)."""
    if (recorder := active()) is not None:
        recorder.row(spec, topology)


def connected(spec: NatsSpec, client: Any, topology: str = "single") -> None:
    """A test connected ``client`` to a server of ``spec``."""
    if (recorder := active()) is not None:
        recorder.connected(spec, client, topology)


def rejected(spec: NatsSpec, reason: str, *, by_mtls: bool, topology: str = "single") -> None:
    """A passing ``assert_connection_rejected`` proved a rejection for ``reason`` (``by_mtls``: the
    server refused the client's certificate, or its lack of one)."""
    if (recorder := active()) is None:
        return
    if reason in ("auth", "tls"):
        recorder.proved(spec, f"rejected:{reason}", topology)
    if by_mtls:
        recorder.proved(spec, "rejected:mtls", topology)


def denied(client: Any, action: str) -> None:
    """A passing ``assert_permission_denied`` proved ``action`` (publish/subscribe) denied."""
    if (recorder := active()) is not None:
        recorder.proved_on_client(client, f"denied:{action}")


def app_refused(spec: NatsSpec, reason: str, topology: str = "single") -> None:
    """A passing ``assert_app_refuses_to_start`` proved the service refused for ``reason`` by a
    server of ``topology`` (a cluster's refusal on the cluster's row)."""
    if (recorder := active()) is not None:
        recorder.proved(spec, f"app-refused:{reason}", topology)
