"""Uvicorn embedded in the service's event loop, on a socket we bind ourselves (so port 0 works and bind
errors surface at startup). Signal handling stays with the app, not uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_SECONDS = 1


class HttpBindError(Exception):
    pass


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # the app owns SIGTERM/SIGINT
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (IPv4 or IPv6 literal or name)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise HttpBindError(f"AEGIS_HTTP_BIND: cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise HttpBindError(
            f"AEGIS_HTTP_BIND: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


def display_url(sock: socket.socket) -> str:
    """``http://host:port`` for the bound socket; wildcard addresses are shown as loopback."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class HttpServer:
    def __init__(self, app: FastAPI, sock: socket.socket, *, access_log: bool = False) -> None:
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=access_log,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = _EmbeddedServer(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None
        self.url = display_url(sock)

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="http-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise the startup failure
                raise RuntimeError("HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        logger.info("HTTP API listening on %s", self.url)

    async def stop(self, timeout: float) -> None:
        task = self._task
        if task is None:
            self._sock.close()
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, Exception) as exc:
            logger.debug("HTTP server stop: %r", exc)
            self._server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
