"""The nats-server config file: :func:`render` writes one server's config from its material."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.ports import LOOPBACK, RANDOM_PORT


def conf_value(value: Any, indent: str = "") -> str:
    """Serialise to nats-server's config syntax (strings always double-quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        text = str(value)
        if any(ord(ch) < 0x20 for ch in text):
            raise ValueError(f"control characters are not allowed in server config values: {text!r}")
        return json.dumps(text)
    inner = indent + "  "
    if isinstance(value, Mapping):
        body = "".join(f"{inner}{key}: {conf_value(item, inner)}\n" for key, item in value.items())
        return "{\n" + body + indent + "}"
    if isinstance(value, list | tuple):
        body = "".join(f"{inner}{conf_value(item, inner)}\n" for item in value)
        return "[\n" + body + indent + "]"
    raise TypeError(f"cannot write {type(value).__name__} into a nats-server config")


def render(
    material: NatsMaterial,
    *,
    name: str,
    store_dir: Path,
    port: int = RANDOM_PORT,
    monitor_port: int = RANDOM_PORT,
    host: str = LOOPBACK,
) -> str:
    """The nats-server config for ``material``'s spec on the given ports.

    ``-1`` lets the server pick a free port (race-free) and log it.
    """
    spec = material.spec
    conf: dict[str, Any] = {
        "server_name": name,
        "listen": f"{host}:{port}",
        "http": f"{host}:{monitor_port}",
        # Fail fast on a dead client instead of the 2 s default.
        "ping_interval": "30s",
    }
    lame_duck = {
        "lame_duck_duration": spec.lame_duck_duration,
        "lame_duck_grace_period": spec.lame_duck_grace_period,
    }
    conf |= {key: f"{round(seconds * 1000)}ms" for key, seconds in lame_duck.items() if seconds is not None}
    if spec.jetstream:
        conf["jetstream"] = {
            "store_dir": str(store_dir),
            "max_memory_store": 256 * 1024 * 1024,
            "max_file_store": 2 * 1024 * 1024 * 1024,
        }
        if spec.sync_interval is not None:
            conf["jetstream"]["sync_interval"] = spec.sync_interval
    if material.server_files is not None:
        tls: dict[str, Any] = {
            "cert_file": str(material.server_files.cert),
            "key_file": str(material.server_files.key),
            "timeout": 2,
        }
        if spec.mtls:
            tls |= {"ca_file": str(material.ca_file), "verify": True}
        conf["tls"] = tls
    if material.cluster is not None:
        conf["cluster"] = material.cluster.block(material.node_index)
    conf |= material.server_config
    lines = [f"{key}: {conf_value(value)}" for key, value in conf.items()]
    if material.operator is not None:
        lines.append(material.operator.server_config_block())
    return "\n".join(lines) + "\n"
