"""nats-server in a container: the docker backend's :class:`~pytest_aegis.natsd.server.NatsRuntime`.

The config is the local backend's (:func:`pytest_aegis.natsd.conf.render` of the
same material) with the container's paths.  It and the TLS files are copied
into the container with ``put_archive`` before it starts, not bind-mounted:
that works with a remote or rootless engine, needs no SELinux relabelling, and
leaves no root-owned files (the JetStream store) in the user's session
directory.  The JetStream store lives in the container's filesystem, so a
restart (the same container started again) keeps it; removing the container
removes it.  Operator-mode JWTs travel inside the config (memory resolver with
``resolver_preload``); client credentials stay on the host where the tests are.

Host networking: the config names ports leased for the server's lifetime
(:mod:`pytest_aegis.ports`), the same on every start.  Bridge networking: the
server listens on 4222/8222 in the container, published on 127.0.0.1 at host
ports leased the same way (fixed, so restarts keep them).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

from pytest_aegis.backends.docker.container import ContainerBacked, ContainerRun, FileSpec, Mount
from pytest_aegis.backends.docker.engine import Engine
from pytest_aegis.backends.docker.store import ContainerStore
from pytest_aegis.backends.local.store import DirectoryStore
from pytest_aegis.certs import CertFiles
from pytest_aegis.faults.disk import PowerLoss, PowerLossDisk, cut_power
from pytest_aegis.natsd.conf import render
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.startup import FATAL_MARKERS, StartingNats, readiness, ready_line
from pytest_aegis.ports import lease_port, start_on_free_port

ETC = "/etc/aegis"
CONF = f"{ETC}/nats-server.conf"
TLS_DIR = f"{ETC}/tls"
STORE = "/data/jetstream"
CLIENT_PORT, MONITOR_PORT = 4222, 8222


def container_material(material: NatsMaterial) -> tuple[NatsMaterial, list[FileSpec]]:
    """``material`` with the container's TLS paths, and the files to copy there."""
    files: list[FileSpec] = []
    if material.server_files is not None:
        cert, key = f"{TLS_DIR}/server.pem", f"{TLS_DIR}/server.key"
        files += [
            FileSpec(cert, material.server_files.cert.read_bytes()),
            FileSpec(key, material.server_files.key.read_bytes(), 0o600),
        ]
        changes: dict[str, object] = {"server_files": CertFiles(Path(cert), Path(key))}
        if material.ca_file is not None:
            files.append(FileSpec(f"{TLS_DIR}/ca.pem", material.ca_file.read_bytes()))
            changes["ca_file"] = Path(f"{TLS_DIR}/ca.pem")
        material = dataclasses.replace(material, **changes)  # type: ignore[arg-type]
    if material.cluster is not None and material.cluster.route_tls is not None:  # a cluster's routes
        routes = material.cluster.route_tls
        cert, key = f"{TLS_DIR}/route.pem", f"{TLS_DIR}/route.key"
        files += [FileSpec(cert, routes.cert.read_bytes()), FileSpec(key, routes.key.read_bytes(), 0o600)]
        layout = dataclasses.replace(  # the same route_ports list: the nodes' current ports
            material.cluster, route_tls=CertFiles(Path(cert), Path(key)), ca_file=material.ca_file
        )
        material = dataclasses.replace(material, cluster=layout)
    return material, files


class DockerNats(StartingNats, ContainerBacked):
    """A nats-server container (one per server; restarts reuse it)."""

    def __init__(
        self,
        engine: Engine,
        material: NatsMaterial,
        *,
        name: str,
        directory: Path,
        image: str,
        network: str,
        labels: dict[str, str],
        start_timeout: float,
        disk: PowerLossDisk | None = None,
    ) -> None:
        super().__init__(name, material, directory, start_timeout=start_timeout)
        #: The store's disk when the spec asks for power loss: a host FUSE mount, bind-mounted
        #: over the store (mounted while the container runs).
        self._disk = disk
        self.image = image
        self._engine = engine
        self._network = network
        self._labels = labels
        self._run: ContainerRun | None = None
        self._listening: dict[str, Any] = {}  # the listen keywords of the running config

    # -- the config ---------------------------------------------------------------

    def _tls_files(self) -> tuple[NatsMaterial, list[FileSpec]]:
        return container_material(self._material)

    @property
    def _host_etc(self) -> Path:
        return self._directory / "etc"

    def _write_host_files(self, files: list[FileSpec]) -> None:
        """Lay ``files`` (all under :data:`ETC`) out in the host directory mounted there."""
        for spec in files:
            path = self._host_etc / Path(spec.path).relative_to(ETC)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_bytes(spec.content)
            path.chmod(spec.mode)

    def _config(self, material: NatsMaterial, listen: dict[str, Any] | None = None) -> FileSpec:
        """The config file; ``listen``: the ports of the running config (a reload cannot change
        them), else this start's."""
        if listen is None and self._network == "host":
            listen = {"host": self.host, "port": self.port, "monitor_port": self.monitor_port or -1}
        elif listen is None:
            listen = {"host": "0.0.0.0", "port": CLIENT_PORT, "monitor_port": MONITOR_PORT}
        self._listening = listen
        text = render(material, name=self.name, store_dir=Path(STORE), **listen)
        (self._directory / "nats-server.conf").write_text(text)  # a copy for humans (and --aegis-keep)
        return FileSpec(CONF, text.encode(), 0o600)

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """A new container; with bridge networking on fresh published ports, retried (new ports,
        new container) when one was taken; with host networking on its leased ports."""
        if self._network == "bridge":
            start_on_free_port(self._start_on)
        else:
            self._lease_ports()
            self._start_on(None)

    def _start_on(self, port: int | None) -> None:
        material, tls_files = self._tls_files()
        ports = {}
        if port is not None:
            self.port, self.monitor_port = port, lease_port()
            ports = {CLIENT_PORT: self.port, MONITOR_PORT: self.monitor_port}
        files = [self._config(material), *tls_files]
        mounts = []
        if self._engine.is_local:  # a read-only bind mount: no copy (a put_archive costs ~70 ms)
            self._write_host_files(files)
            files, mounts = [], [Mount(self._host_etc, ETC)]
        if self._disk is not None:
            self._disk.mount()
            mounts.append(Mount(self._disk.mountpoint, STORE, "rw"))
        self._run = ContainerRun(
            self._engine,
            name=f"nats-server[{self.name}]",
            docker_name=f"aegis-nats-{self.name}-{secrets.token_hex(3)}",
            image=self.image,
            image_setting="--aegis-docker-nats-image",
            command=["-c", CONF],
            env={},
            labels=self._labels,
            network=self._network,
            ports=ports,
            files=files,
            mounts=mounts,
            log_path=self._directory / "nats-server.log",
            fatal_markers=FATAL_MARKERS,
            hint=f"config: {self._directory / 'nats-server.conf'} (at {CONF} in the container)",
        )
        self._run.launch_until(self._await_ready)

    def _await_ready(self) -> None:
        assert self._run is not None
        ready = readiness(self._material)
        self._run.wait_line(ready, 0, time.monotonic() + self._timeout, f"'{ready_line(self._material)}'")
        # bridge: the lines name the container's ports, not the published ones
        self._note_startup(self._run.startup_lines, ports=self._network == "host")

    def restart(self) -> None:
        """Stop if running, then start the same container again: same ports, same JetStream store."""
        assert self._run is not None
        self.stop()
        if self._disk is not None:  # the container's bind mount sees the new mount (same path)
            self._disk.mount()
        if self._network == "host":  # the config as the first start wrote it, on the same ports
            material, _ = self._tls_files()
            config = self._config(material)
            if self._engine.is_local:
                self._write_host_files([config])
            else:
                self._run.put_files([config])
        self._run.start_again()
        self._await_ready()

    def reload_config(self, *, signal: bool = True) -> None:
        """Rewrite the config and TLS files in the container (the bind-mounted directory, or with
        ``put_archive``) from the material and, unless ``signal`` is false, send SIGHUP through the
        engine."""
        if self._run is None:
            raise RuntimeError(f"nats-server[{self.name}] was never started: nothing to reload")
        material, tls_files = self._tls_files()
        files = [self._config(material, self._listening), *tls_files]
        if self._engine.is_local:
            self._write_host_files(files)
        else:
            self._run.put_files(files)
        if signal:
            self._run.signal("SIGHUP")

    def signal(self, name: str) -> None:
        """Send the signal ``name`` (``"SIGUSR2"``: lame-duck mode) to the server through the engine."""
        assert self._run is not None
        self._run.signal(name)

    def stopped_store(self) -> ContainerStore | DirectoryStore:
        """The JetStream store's files in the stopped container (through the engine)."""
        if self._run is None or self._run.container is None:
            raise RuntimeError(f"nats-server[{self.name}] was never started: it has no store")
        if self.is_running:
            raise RuntimeError(
                f"nats-server[{self.name}] is running: stop() or kill() it before its store is touched"
            )
        if self._disk is not None:  # the store is the host's disk, not the container's
            return DirectoryStore(self._disk.live)
        return ContainerStore(self._run.container, STORE)

    def stop(self) -> None:
        if self._run is not None:
            self._run.stop()
        self._unmount()

    def kill(self) -> None:
        self._kill_container()
        self._unmount()

    def power_loss(self) -> PowerLoss:
        """Kill the container, and the store loses every write not yet fsynced (the spec's
        ``power_loss``; the disk is the host's, so the engine must be local)."""
        return cut_power(self._disk, f"nats-server[{self.name}]", self._kill_container)

    def _kill_container(self) -> None:
        if self._run is not None:
            self._run.kill()

    def _unmount(self) -> None:
        if self._disk is not None:
            self._disk.unmount()

    def keep_instructions(self) -> str:
        name = self.container_name or "?"
        return f"container {name} (image {self.image}); stop with `docker rm -f {name}`"
