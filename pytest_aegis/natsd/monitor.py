"""GET a nats-server monitoring endpoint (``/jsz``, ``/routez``, ``/healthz``, ``/varz``): one
function for every reader, on kept-alive connections.

The JetStream isolation reads a shared server's ``/jsz`` twice a test, and a new TCP connection
plus urllib's opener were half of each read's ~0.85 ms; a cluster's health is read from worker
threads.  So each monitoring URL has at most one idle kept-alive connection: a reader takes it
(or makes one), and gives it back when its request succeeded; a connection is never shared by two
threads at once.  A kept connection that outlived a server's restart fails its next request with
a reset: that request is made once more, on a new connection.  :func:`close_monitors` closes the
idle ones when the session ends.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Any

#: Seconds a monitoring request may take.
MONITOR_TIMEOUT = 2.0

_IDLE: dict[str, http.client.HTTPConnection] = {}
_LOCK = threading.Lock()


def monitor_get(monitor_url: str, path: str, *, timeout: float = MONITOR_TIMEOUT) -> dict[str, Any]:
    """``GET <monitor_url><path>`` as JSON; :class:`OSError` if the node does not answer or answers
    with another status than 200 (``/healthz`` answers 503 while JetStream is not current)."""
    try:
        body = _get(monitor_url, path, timeout)
    except ConnectionResetError:  # RemoteDisconnected too: the kept connection outlived a restart
        body = _get(monitor_url, path, timeout)  # so once more, on a new one
    document: dict[str, Any] = json.loads(body)
    return document


def _get(monitor_url: str, path: str, timeout: float) -> bytes:
    with _LOCK:
        conn = _IDLE.pop(monitor_url, None)
    if conn is None:
        url = urllib.parse.urlsplit(monitor_url)
        conn = http.client.HTTPConnection(str(url.hostname), url.port)
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        if isinstance(exc, OSError):
            raise
        raise OSError(f"GET {monitor_url}{path}: {type(exc).__name__}: {exc}") from None
    with _LOCK:
        spare = _IDLE.setdefault(monitor_url, conn)
    if spare is not conn:  # another reader gave one back meanwhile
        conn.close()
    if reply.status != 200:
        raise OSError(f"GET {monitor_url}{path}: HTTP {reply.status} {reply.reason}")
    return body


def close_monitors() -> None:
    """Close the idle kept-alive connections (the session's end)."""
    with _LOCK:
        while _IDLE:
            _IDLE.popitem()[1].close()
