"""Network faults between the code under test and its servers, in-process: :class:`FaultProxy`
(``aegis_proxy``).  See :mod:`.proxy` for the faults, :mod:`.targets` for proxies that mirror a
NATS server or a PostgreSQL server."""

from __future__ import annotations

from pytest_aegis.faults.proxy import Fault, FaultProxy, ProxyError

__all__ = ["Fault", "FaultProxy", "ProxyError"]
