"""greeter: a NATS service of the services protocol (ADR-32), built with nats-py's ``nats.micro``.

It answers ``$SRV.PING`` / ``$SRV.INFO`` / ``$SRV.STATS`` (``nats.micro`` does that by itself) and
two endpoints in the ``greeter`` group:

* ``greeter.hello``: ``{"name": "Ada"}`` -> ``{"greeting": "Hello, Ada!"}``; a body that is not such
  an object gets a service error reply (code 400), counted as an error in its STATS;
* ``greeter.echo``: replies with the request's body.

Configuration, from its own environment variables (the test suite maps the harness's onto them,
see ``aegis_app_env`` in pyproject.toml):

==========================  ==================================================================
``GREETER_NATS_URL``        where NATS is (``tls://`` when the server wants TLS); required
``GREETER_NATS_USER``       user name and password, when the server wants them
``GREETER_NATS_PASSWORD``
``GREETER_NATS_CA``         the CA to verify the server's certificate against (PEM file)
``GREETER_SERVICE_NAME``    the name it registers under in the services protocol (``greeter``)
==========================  ==================================================================

It fails fast: a wrong password or an untrusted certificate ends it at once with exit code 1 and
the reason on stderr, instead of retrying a refusal that will not go away. Once connected it
reconnects after a lost connection. SIGTERM (or SIGINT) stops it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
from dataclasses import dataclass

import nats
import nats.micro
from nats.aio.client import Client
from nats.micro.request import Request, ServiceError

VERSION = "1.2.0"


@dataclass(frozen=True)
class Settings:
    url: str
    user: str | None
    password: str | None
    ca_file: str | None
    service_name: str

    @classmethod
    def from_env(cls) -> Settings:
        url = os.environ.get("GREETER_NATS_URL", "")
        if not url:
            raise SystemExit("greeter: GREETER_NATS_URL is not set (e.g. tls://127.0.0.1:4222)")
        return cls(
            url=url,
            user=os.environ.get("GREETER_NATS_USER") or None,
            password=os.environ.get("GREETER_NATS_PASSWORD") or None,
            ca_file=os.environ.get("GREETER_NATS_CA") or None,
            service_name=os.environ.get("GREETER_SERVICE_NAME") or "greeter",
        )

    def tls(self) -> ssl.SSLContext | None:
        """Verify the server against ``ca_file`` only (with hostname checks), when one is given."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=self.ca_file)


async def hello(request: Request) -> None:
    try:
        body = json.loads(request.data)
        name = body["name"]
        if not isinstance(name, str) or not name:
            raise TypeError("name must be a non-empty string")
    except (ValueError, TypeError, KeyError) as exc:
        # A ServiceError becomes an error reply (Nats-Service-Error-Code: 400) and counts in STATS.
        raise ServiceError("400", f'expected {{"name": "<a name>"}}: {exc}') from None
    await request.respond(json.dumps({"greeting": f"Hello, {name}!"}).encode())


async def echo(request: Request) -> None:
    await request.respond(request.data)


async def connect(settings: Settings) -> Client:
    async def log_error(error: Exception) -> None:
        print(f"greeter: NATS error: {error!r}", file=sys.stderr)

    # nats-py retries a first connect that failed like a reconnect (60 times, 2 s apart), so a
    # refused login would keep the service "starting" for two minutes: connect once, then turn
    # reconnecting on for the life of the connection.
    nc = await nats.connect(
        settings.url,
        user=settings.user,
        password=settings.password,
        tls=settings.tls(),
        name=settings.service_name,
        connect_timeout=5,
        allow_reconnect=False,
        error_cb=log_error,
    )
    nc.options["allow_reconnect"] = True
    return nc


async def main() -> int:
    settings = Settings.from_env()
    try:
        nc = await connect(settings)
    except Exception as exc:  # a refusal, an unreachable server: say which, exit non-zero
        print(f"greeter: cannot connect to NATS at {settings.url}: {exc!r}", file=sys.stderr)
        return 1

    service = await nats.micro.add_service(
        nc, name=settings.service_name, version=VERSION, description="says hello, echoes"
    )
    group = service.add_group(name="greeter")
    await group.add_endpoint(name="hello", handler=hello)
    await group.add_endpoint(name="echo", handler=echo)
    print(f"greeter: {settings.service_name} {VERSION} up as {service.id} at {settings.url}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
    await nc.drain()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
