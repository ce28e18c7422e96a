"""Names vulture (make lint) cannot see being used, each with the reason.  Not imported by anything."""

from pytest_aegis.assertions.refusal import AppRefusal
from pytest_aegis.backends.local.postgres import PostgresServer
from pytest_aegis.certs import AegisCA
from pytest_aegis.errors import ServerStartError
from pytest_aegis.faults.proxy import FaultProxy
from pytest_aegis.natsd.cluster import NatsCluster
from pytest_aegis.natsd.operator import OperatorTrust
from pytest_aegis.natsd.server import NatsServer


# Public API that only users' tests call (documented in docs/):
AegisCA.untrusting_ssl_context
AegisCA.expired_client_cert
AegisCA.untrusted_client_cert
NatsServer.monitor_url
NatsServer.issue_user_creds
NatsServer.paused  # with server.paused(): ... (tests use it; the plugin pauses through pause/resume)
PostgresServer.paused
ServerStartError.fatal_lines
PostgresServer.cache_dir
OperatorTrust.operator_public_key
AppRefusal.app_log  # what a user reads from a refusal
FaultProxy.accepted  # the proxy's public API (tests call it; nothing in the plugin does)
FaultProxy.connections
FaultProxy.bandwidth
FaultProxy.blackhole
FaultProxy.cut
FaultProxy.heal
FaultProxy.slicer
FaultProxy.limit_data
FaultProxy.slow_close
FaultProxy.timeout
FaultProxy.reset_peer
NatsCluster.stream_leader  # the cluster handle's public API (tests call it)
NatsCluster.step_down
NatsCluster.rolling_restart
NatsCluster.nemesis
NatsCluster.add_node
NatsCluster.node_of
NatsCluster.power_loss

# Attributes read by libraries, not by us: tarfile.TarInfo.mtime (the archive's timestamps) and
# testcontainers' config (Ryuk off unless asked).
_.mtime
_.ryuk_disabled
_.parallel  # coverage.py's CoverageConfig, serialised for the service processes
_.sigterm

# The reference service: framework hooks and what tests use.
from aegis_service.adapters.http.server import _EmbeddedServer
from aegis_service.adapters.memory import MemoryDefinitionStore
from aegis_service.adapters.nats.pull import BatchPuller

_EmbeddedServer.capture_signals  # uvicorn.Server calls it (the app owns SIGTERM/SIGINT)
_.should_exit  # uvicorn.Server's stop flags, set by the service to stop it
_.force_exit
MemoryDefinitionStore  # the DefinitionStore adapter the unit tests run the HTTP layer on
BatchPuller.lingering  # tests wait on it before they delete a consumer mid-fetch
_.updated_at  # wire fields of the definition and health models (serialised by pydantic)
_.uptime_seconds

from aegis_service.settings import Settings

Settings.auth_mode  # which auth mode the variables select: the settings unit tests assert it

from pytest_aegis.faults.link import End

# asyncio.Protocol callbacks: the event loop calls them
End.connection_made
End.data_received
End.eof_received
End.pause_writing
End.resume_writing
End.connection_lost

from bench.hunt.rounds import test_hunt

test_hunt  # a pytest test: bench/hunt/__main__.py runs it with pytest

from pytest_aegis.faults.disk import unusable
from pytest_aegis.faults.lazyfs import LazyFS

unusable  # the power-loss tests' skip reason (and users' conftests)
# FUSE callbacks: mfusepy calls each operation by its name
LazyFS.use_ns
LazyFS.readdir
LazyFS.statfs
LazyFS.utimens
LazyFS.fallocate
LazyFS.fsyncdir

from pytest_aegis.app.factory import AppFactory

AppFactory.start_set  # public API: aegis_app_factory.start_set(...) in users' tests
