"""The registry suite's two HTTP load generators behind one :class:`Client` protocol: a minimal
HTTP/1.1 keep-alive client on asyncio streams (the measurement) and httpx (the reference)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

HTTP_TIMEOUT = 30.0
JsonBody = dict[str, Any]


class HttpProtocolError(Exception):
    """The server's answer is not the HTTP/1.1 the minimal client understands."""


@dataclass(frozen=True)
class Reply:
    status: int
    etag: str | None
    body: bytes


class Client(Protocol):
    async def request(
        self, method: str, path: str, body: JsonBody | None = None, headers: dict[str, str] | None = None
    ) -> Reply: ...

    async def close(self) -> None: ...


class RawClient:
    """HTTP/1.1 over one keep-alive connection (reopened after an error); ``Content-Length`` bodies only."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: JsonBody | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        reader, writer = await self._connection()
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
        head += f"Content-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        try:
            writer.write(head.encode("latin-1") + b"\r\n" + data)
            return await self._read_reply(reader)
        except BaseException:
            await self.close()
            raise

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The keep-alive connection, opened (within :data:`HTTP_TIMEOUT`) if there is none."""
        if self._reader is not None and self._writer is not None:
            return self._reader, self._writer
        connecting = asyncio.open_connection(self._host, self._port)
        reader, writer = await asyncio.wait_for(connecting, HTTP_TIMEOUT)
        self._reader, self._writer = reader, writer
        return reader, writer

    @staticmethod
    async def _read_reply(reader: asyncio.StreamReader) -> Reply:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpProtocolError(f"bad status line {lines[0]!r}")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if "chunked" in fields.get("transfer-encoding", ""):
            raise HttpProtocolError("chunked responses are not supported by the minimal client")
        length = int(fields.get("content-length", "0"))
        content = await reader.readexactly(length) if length else b""
        if fields.get("connection", "").lower() == "close":
            raise HttpProtocolError("the server closed the keep-alive connection")
        return Reply(int(parts[1]), fields.get("etag"), content)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


class HttpxClient:
    """One :class:`httpx.AsyncClient` with a single connection."""

    def __init__(self, base_url: str, tls: ssl.SSLContext) -> None:
        # ``verify`` takes a ready context: building one per client would cost ~30 ms each.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            verify=tls,
            timeout=HTTP_TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def request(
        self, method: str, path: str, body: JsonBody | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        response = await self._client.request(method, path, json=body, headers=headers)
        return Reply(response.status_code, response.headers.get("etag"), response.content)

    async def close(self) -> None:
        await self._client.aclose()
