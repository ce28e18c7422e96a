"""Third-party servers declared in the ``aegis_servers`` setting: one line per server,
``NAME key=value ...``::

    aegis_servers =
        redis
        cache  preset=redis image=redis:7-alpine
        search binary=opensearch args="-E http.port={port}" health=http:/_cluster/health url=http://{host}:{port}

A line whose name (or ``preset=``) is a known server (:data:`~pytest_aegis.thirdparty.presets.PRESETS`)
starts from it.  Values are quoted as in a shell.  A bad line is a
:class:`~pytest_aegis.errors.ConfigError` naming the setting, the line and the key, when the
session is configured.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from pytest_aegis.app.declared import read_pairs, read_seconds
from pytest_aegis.app.health import ReadyLine, parse_health
from pytest_aegis.errors import ConfigError, SpecError
from pytest_aegis.thirdparty.presets import PRESETS
from pytest_aegis.thirdparty.spec import SERVER_HEALTH, ServerSpec

_Reader = Callable[[str], tuple[str, Any]]


def _health(text: str) -> tuple[str, Any]:
    contract = parse_health(text)
    if not isinstance(contract, SERVER_HEALTH):
        raise ValueError(
            "a third-party server's health is tcp, http:/PATH or ready (NATS contracts are an app's)"
        )
    return "health", contract


KEYS: Mapping[str, tuple[str, _Reader]] = {
    "preset": (f"start from a known server: {', '.join(PRESETS)}", lambda text: ("preset", text)),
    "binary": (
        "local backend: its executable (a path, or a name looked up in the venv, then PATH)",
        lambda text: ("binary", text),
    ),
    "args": (
        "its arguments ({host}, {port}, {dir} filled in)",
        lambda text: ("args", tuple(shlex.split(text))),
    ),
    "image": ("docker backend: the image it runs in", lambda text: ("image", text)),
    "image_args": (
        "docker backend: the container's command (default: args)",
        lambda text: ("image_args", tuple(shlex.split(text))),
    ),
    "health": ("when it is ready: tcp (default) | http:/PATH | ready", _health),
    "ready": ("a regex for the line it prints when ready", lambda text: ("ready_pattern", text)),
    "url": ("how clients reach it, e.g. redis://{host}:{port}", lambda text: ("url", text)),
    "env": ("variables for its process: 'NAME=value ...'", lambda text: ("env", read_pairs(text))),
    "start_timeout": (
        "seconds it may take to become ready",
        lambda text: ("start_timeout", read_seconds(text)),
    ),
}


def _known_keys() -> str:
    return "the keys: " + "; ".join(f"{key} ({what})" for key, (what, _) in KEYS.items())


def parse_servers(text: str, origin: str) -> dict[str, ServerSpec]:
    """The servers ``text`` declares (from ``origin``, e.g. ``ini aegis_servers``), by name."""
    servers: dict[str, ServerSpec] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        where = f"{origin}, line {number} ({line.strip()!r})"
        try:
            spec = _parse_line(line)
        except (ValueError, SpecError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if spec.name in servers:
            raise ConfigError(
                f"{where}: the server {spec.name!r} is declared twice; give each server one line"
            )
        servers[spec.name] = spec
    return servers


def _parse_line(line: str) -> ServerSpec:
    name, *items = shlex.split(line)
    name = name.removesuffix(":")
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected key=value; {_known_keys()}")
        if key not in KEYS:
            raise ValueError(f"{key}={text!r}: {key!r} is not a key a server has; {_known_keys()}")
        try:
            field, value = KEYS[key][1](text)
        except (ValueError, SpecError) as exc:
            raise ValueError(f"{key}={text!r}: {exc}") from None
        values[field] = value
    preset_name = values.pop("preset", name if name in PRESETS else None)
    if preset_name is None:
        return ServerSpec(name=name, **values)
    if preset_name not in PRESETS:
        raise ValueError(f"preset={preset_name!r}: no such server; known: {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    if isinstance(values.get("health"), ReadyLine) and "ready_pattern" not in values:
        values["ready_pattern"] = preset.ready_pattern
    return dataclasses.replace(preset, name=name, **values)
