"""The composition root: build the adapters and use cases from the settings, start everything, announce
READY on stdout, stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

import nats.js.errors
from fastapi import APIRouter, FastAPI
from nats.aio.client import Client

from aegis_service import migrations
from aegis_service.adapters.http.api import create_app
from aegis_service.adapters.http.audit import create_audit_routers
from aegis_service.adapters.http.metrics import install_metrics
from aegis_service.adapters.http.probes import create_probes_router
from aegis_service.adapters.http.server import HttpBindError, HttpServer, bind_socket
from aegis_service.adapters.nats import audit as nats_audit
from aegis_service.adapters.nats.connection import ConnectError, NatsConnection
from aegis_service.adapters.nats.definitions import KvDefinitionStore
from aegis_service.adapters.nats.health import HealthResponder, SubscriptionDenied
from aegis_service.adapters.nats.instances import KvInstanceRegistry
from aegis_service.adapters.nats.kv import (
    DEFINITIONS_BUCKET,
    INSTANCES_BUCKET,
    KvGateway,
    is_placement_refused,
    outage_hint,
)
from aegis_service.adapters.nats.micro import MicroService
from aegis_service.adapters.nats.publish import StreamPublisher
from aegis_service.adapters.postgres.audit_events import PostgresEventQuery, PostgresEventStore
from aegis_service.adapters.postgres.db import Database
from aegis_service.adapters.postgres.grants import GrantRepository
from aegis_service.adapters.postgres.outbox import PostgresOutbox
from aegis_service.adapters.prometheus import PrometheusMetrics
from aegis_service.audit import AuditConsumer, OutboxRelay
from aegis_service.backoff import full_jitter
from aegis_service.breaker import CircuitBreaker
from aegis_service.definitions import DefinitionService
from aegis_service.domain.errors import Unavailable, describe_error
from aegis_service.harness import READY_PREFIX
from aegis_service.health import HealthMonitor, Probes
from aegis_service.metrics import Metrics, MetricsSampler
from aegis_service.registration import Registrar
from aegis_service.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_STEP_TIMEOUT = 1.0
EXIT_OK = 0
EXIT_FAILURE = 1


class StartupError(Exception):
    """Startup could not complete; the message is one line for the operator."""


class AuditPipeline:
    """The audit pipeline (on only with ``AEGIS_DATABASE_URL``): the pool for HTTP, the ``AUDIT`` stream
    and consumer, the outbox relay and the consumer tasks, and their routes."""

    def __init__(self, settings: Settings, connection: NatsConnection, metrics: Metrics) -> None:
        assert settings.database_url is not None
        dsn = settings.database_url.get_secret_value()
        self._settings = settings
        self._connection = connection
        self._tasks: list[asyncio.Task[None]] = []
        self.database = Database(dsn)
        self.grants = GrantRepository(self.database, f"{settings.service_name}/{settings.instance_id}")
        self.relay = OutboxRelay(
            PostgresOutbox(dsn), StreamPublisher(self.client), poll_interval=settings.outbox_poll_interval
        )
        self.consumer = AuditConsumer(
            nats_audit.AuditSource(self.client),
            PostgresEventStore(dsn),
            batch=settings.audit_batch_size,
            max_event_bytes=settings.audit_max_event_bytes,
            metrics=metrics,
        )

    def client(self) -> Client:
        """The service's NATS connection (one for the process; it is not replaced once connected)."""
        return self._connection.client

    async def set_up_stream(self) -> None:
        """Create or update the ``AUDIT`` stream and its consumer; :class:`Unavailable` (retried at
        startup) when the cluster cannot place its replicas yet."""
        s = self._settings
        try:
            await nats_audit.set_up(
                self._connection.client.jetstream(timeout=s.request_timeout),
                duplicate_window=s.audit_duplicate_window,
                ack_wait=s.audit_ack_wait,
                batch_size=s.audit_batch_size,
                replicas=s.jetstream_replicas,
            )
        except nats.js.errors.BadRequestError as exc:
            if not is_placement_refused(exc):
                raise
            raise Unavailable(describe_error(exc)) from exc

    async def open(self) -> None:
        await self.database.open()

    async def pending(self) -> int:
        """The consumer's unacknowledged messages (for the metrics)."""
        return await nats_audit.pending_messages(
            self.client().jetstream(timeout=self._settings.request_timeout)
        )

    def routers(self) -> list[APIRouter]:
        return create_audit_routers(self.grants, PostgresEventQuery(self.database))

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.relay.run(), name="outbox-relay"),
            asyncio.create_task(self.consumer.run(), name="audit-consumer"),
        ]

    async def stop(self, timeout: float) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout)
        self._tasks = []
        await self.database.close()


class ServiceApp:
    def __init__(self, settings: Settings, stdout: TextIO | None = None) -> None:
        self.settings = settings
        self._stdout = stdout or sys.stdout
        self._stop = asyncio.Event()
        self.connection = NatsConnection(settings)
        self.metrics = PrometheusMetrics()
        self.connection.on_reconnected(self.metrics.nats_reconnected)
        self.breaker = CircuitBreaker(
            "nats-publish", settings.breaker_failure_threshold, settings.breaker_reset_timeout
        )
        self.gateway = KvGateway(
            self.connection, self.breaker, settings.request_timeout, replicas=settings.jetstream_replicas
        )
        self.registrar = Registrar(settings, KvInstanceRegistry(self.gateway))
        self.monitor = HealthMonitor(settings, self.connection, self.registrar, self.breaker)
        self.responder = HealthResponder(self.monitor, self.connection, settings, self.metrics)
        self.micro = MicroService(self.monitor, self.connection, settings, self.metrics)
        self.audit = (
            AuditPipeline(settings, self.connection, self.metrics)
            if settings.database_url is not None
            else None
        )
        self.sampler = MetricsSampler(
            self.metrics, self.connection, self.audit.pending if self.audit is not None else None
        )
        self.http: HttpServer | None = None
        self._sock: socket.socket | None = None
        self._registered = False

    # -- entry -------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            return await self._run()
        finally:
            await self._shutdown()
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stop.is_set():
            logger.info("received %s, shutting down", sig.name)
        self._stop.set()

    async def _run(self) -> int:
        startup = asyncio.create_task(self._startup(), name="startup")
        stopped = asyncio.create_task(self._stop.wait(), name="stop-wait")
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await startup
            logger.info("stopped before becoming ready")
            return EXIT_OK
        try:
            startup.result()
        except StartupError as exc:
            stopped.cancel()
            logger.error("startup failed: %s", exc)
            return EXIT_FAILURE
        self._announce_ready()

        assert self.http is not None and self.http.task is not None
        lost = asyncio.create_task(self.connection.lost.wait(), name="nats-lost")
        waiters = {stopped, lost, self.http.task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stopped, lost):
            waiter.cancel()
        if self._stop.is_set():
            return EXIT_OK
        if self.connection.lost.is_set():
            logger.error("NATS connection lost for good; exiting")
        else:
            logger.error("HTTP server stopped unexpectedly; exiting")
        return EXIT_FAILURE

    # -- startup -----------------------------------------------------------------------------------

    async def _startup(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.connect_timeout
        try:
            self._sock = bind_socket(s.http_host, s.http_port)
        except HttpBindError as exc:
            raise StartupError(str(exc)) from None
        try:
            await self.connection.connect(deadline)
        except ConnectError as exc:
            raise StartupError(str(exc)) from None
        self.connection.on_reconnected(self.registrar.trigger)

        await self._until(deadline, "open KV buckets", self._open_buckets)
        try:
            await self.responder.start()
        except SubscriptionDenied as exc:
            raise StartupError(str(exc)) from None
        await self.micro.start()
        if self.audit is not None:
            await self._until(deadline, "set up the AUDIT stream", self.audit.set_up_stream)
            await self.audit.open()

        self.http = HttpServer(self._http_app(), self._sock, access_log=s.log_level == "DEBUG")
        await self.http.start()

        self.registrar.set_metadata(
            {
                "httpUrl": self.http.url,
                "healthSubject": s.health_subject,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
            }
        )
        await self._until(deadline, "register instance", self.registrar.register)
        self._registered = True
        self.registrar.start()
        if self.audit is not None:
            self.audit.start()

    def _http_app(self) -> FastAPI:
        definitions = DefinitionService(KvDefinitionStore(self.gateway), self.metrics)
        api = create_app(definitions, self.monitor.report)
        install_metrics(api, self.metrics, self._scrape)
        database = self.audit.database if self.audit is not None else None
        api.include_router(create_probes_router(Probes(self.connection, database, migrations.head)))
        for router in self.audit.routers() if self.audit is not None else ():
            api.include_router(router)
        return api

    async def _scrape(self, accept: str | None) -> tuple[bytes, str]:
        await self.sampler.sample()
        return self.metrics.render(accept)

    async def _open_buckets(self) -> None:
        async def opened(_kv: object) -> None:
            return None

        for bucket in (INSTANCES_BUCKET, DEFINITIONS_BUCKET):
            await self.gateway.run(bucket, opened, f"open KV bucket {bucket}")

    async def _until(self, deadline: float, what: str, step: Callable[[], Awaitable[object]]) -> None:
        """Retry async ``step`` on :class:`Unavailable` with jittered backoff until ``deadline``."""
        attempt = 0
        while True:
            try:
                await step()
                return
            except Unavailable as exc:
                attempt += 1
                delay = full_jitter(attempt - 1, 0.1, 2.0)
                remaining = deadline - time.monotonic()
                if delay >= remaining:
                    hint = outage_hint(exc.__cause__ or exc, self.settings.jetstream_replicas)
                    raise StartupError(
                        f"cannot {what} within AEGIS_CONNECT_TIMEOUT={self.settings.connect_timeout:g}s: "
                        f"{exc.message} ({hint})"
                    ) from None
                logger.warning("cannot %s yet (%s); retrying in %.2fs", what, exc.message, delay)
                await asyncio.sleep(delay)
            except Exception as exc:
                raise StartupError(f"cannot {what}: {describe_error(exc)}") from exc

    def _announce_ready(self) -> None:
        assert self.http is not None
        payload = {
            "instanceId": self.settings.instance_id,
            "httpUrl": self.http.url,
            "serviceName": self.settings.service_name,
            "healthSubject": self.settings.health_subject,
        }
        self._stdout.write(READY_PREFIX + json.dumps(payload) + "\n")
        self._stdout.flush()
        logger.info("ready: %s", payload)
        # Everything allocated at start-up lives as long as the process: move it out of
        # the collector's sight, so full collections under load stay short.
        gc.freeze()
        # Request handling allocates many short-lived objects; collect the young
        # generation less often (the default 700 triggers a pass every few requests).
        gc.set_threshold(20_000, 20, 20)

    # -- shutdown ----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        started = time.monotonic()
        await self.registrar.stop()
        if self._registered:
            try:
                await asyncio.wait_for(self.registrar.deregister(), SHUTDOWN_STEP_TIMEOUT)
            except Exception as exc:
                logger.warning(
                    "could not remove registry entry %s: %s", self.registrar.key, describe_error(exc)
                )
        if self.audit is not None:
            await self.audit.stop(SHUTDOWN_STEP_TIMEOUT)
        with contextlib.suppress(Exception):  # the connection may be gone: nothing to unsubscribe
            await asyncio.wait_for(self.micro.stop(), SHUTDOWN_STEP_TIMEOUT)
        if self.http is not None:
            await self.http.stop(SHUTDOWN_STEP_TIMEOUT)
        elif self._sock is not None:
            self._sock.close()
        await self.connection.drain(SHUTDOWN_STEP_TIMEOUT)
        logger.info("stopped in %.2fs", time.monotonic() - started)
