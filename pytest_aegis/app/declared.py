"""Apps declared by name in the ``aegis_apps`` setting: one line per app, ``NAME key=value ...``.

::

    aegis_apps =
        orders command="{python} -m orders" health=http:/healthz env_map="ORDERS_NATS=AEGIS_NATS_URL"
        audit  command="{python} -m audit" health=srv ready="^AUDIT READY$" start_timeout=20

Values are quoted as in a shell (``shlex``).  Keys: see :data:`KEYS`.  A bad line is a
:class:`~pytest_aegis.errors.ConfigError` naming the setting, the line and the key, at the
session's start.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_aegis.app.health import HEALTH_FORMS, parse_health
from pytest_aegis.app.spec import (
    DEFAULT_APP,
    DOCKERFILE,
    ENTRY_POINTS,
    AppSpec,
    command_line,
    parse_env_map,
)
from pytest_aegis.errors import ConfigError, SpecError

#: What each key sets, and how its text is read (``rootdir`` for paths and commands).
_Reader = Callable[[str, Path | None], tuple[str, Any]]


def read_seconds(text: str) -> float:
    number = float(text)
    if number <= 0:
        raise ValueError("not a positive number of seconds")
    return number


def read_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for item in shlex.split(text):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE pairs, got {item!r}")
        pairs[name] = value
    return pairs


KEYS: Mapping[str, tuple[str, _Reader]] = {
    "command": (
        "its command line (required; {python}, {rootdir} as in aegis_app_command)",
        lambda text, root: ("command", command_line(text, root)),
    ),
    "health": (
        f"its health contract: {' | '.join(HEALTH_FORMS)} (default nats:health.check)",
        lambda text, root: ("health", parse_health(text)),
    ),
    "ready": ("a regex for its ready line", lambda text, root: ("ready_pattern", text)),
    "env": ("extra variables: 'NAME=value NAME2=value'", lambda text, root: ("env", read_pairs(text))),
    "env_map": (
        "rename the harness's variables: 'APP_NATS_URL=AEGIS_NATS_URL ...'",
        lambda text, root: ("env_map", parse_env_map(text)),
    ),
    "start_timeout": (
        "seconds it may take to become healthy",
        lambda text, root: ("start_timeout", read_seconds(text)),
    ),
    "depends_on": (
        "apps that must run before it: 'orders,cache' (its env may name them: {orders.http_url})",
        lambda text, root: ("depends_on", tuple(n for n in text.replace(",", " ").split() if n)),
    ),
    "cwd": (
        "where it runs, relative to the rootdir (default: the rootdir)",
        lambda text, root: ("cwd", (root or Path.cwd()) / text),
    ),
    "image": (
        f"on the docker backend, the image it runs in (its own command; {DOCKERFILE}: "
        "--aegis-docker-app-image, else built from the rootdir's Dockerfile)",
        lambda text, root: ("image", text),
    ),
}


def parse_apps(
    text: str, origin: str, rootdir: Path | None, *, servers: Collection[str] = ()
) -> dict[str, AppSpec]:
    """The apps ``text`` declares (from ``origin``, e.g. ``ini aegis_apps``), by name; their
    ``depends_on`` may also name the third-party ``servers``."""
    apps: dict[str, AppSpec] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        where = f"{origin}, line {number} ({line.strip()!r})"
        try:
            name, spec = _parse_line(line, rootdir)
        except (ValueError, SpecError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if name in apps:
            raise ConfigError(f"{where}: the app {name!r} is declared twice; give each app one line")
        apps[name] = spec
    try:
        start_order(apps, apps, servers=servers)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return apps


def _parse_line(line: str, rootdir: Path | None) -> tuple[str, AppSpec]:
    name, *items = shlex.split(line)
    name = name.removesuffix(":")
    if name == DEFAULT_APP:
        raise ValueError(
            f"{DEFAULT_APP!r} is the default app's name (aegis_app); set aegis_app_command for it, "
            "or give this app another name"
        )
    fields = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected key=value; {_known_keys()}")
        fields[key] = text
    return name, spec_from_fields(name, fields, rootdir)


def _known_keys() -> str:
    return "the keys: " + "; ".join(f"{k} ({what})" for k, (what, _) in KEYS.items())


def spec_from_fields(name: str, fields: Mapping[str, str], rootdir: Path | None) -> AppSpec:
    """The app ``name`` that ``fields`` (:data:`KEYS` to their text) declare; :class:`ValueError`
    or :class:`SpecError` naming the key when one is bad."""
    values: dict[str, Any] = {"cwd": rootdir}
    for key, text in fields.items():
        if key not in KEYS:
            raise ValueError(f"{key}={text!r}: {key!r} is not a key an app has; {_known_keys()}")
        try:
            field, value = KEYS[key][1](text, rootdir)
        except ValueError as exc:
            raise ValueError(f"{key}={text!r}: {exc}") from None
        values[field] = value
    if "command" not in values:
        raise ValueError(f"the app {name!r} has no command=...; every declared app needs its command line")
    return AppSpec(name=name, **values)


@functools.cache  # read once per process: installed packages do not change during a session
def installed_apps(rootdir: Path | None) -> Mapping[str, AppSpec]:
    """The apps installed packages declare: each entry point of the group :data:`ENTRY_POINTS` is a
    function returning the fields of one app (:data:`KEYS`, as text), named by the entry point
    (``app``: the default app, ``aegis_app``).  :class:`ConfigError` naming the entry point and its
    package when one is bad."""
    apps = {}
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        where = f"entry point {entry.name} = {entry.value} (group {ENTRY_POINTS}"
        where += f", package {entry.dist.name})" if entry.dist is not None else ")"
        try:
            declare = entry.load()
        except ModuleNotFoundError:  # metadata left behind by a package no longer importable
            continue
        except ImportError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        try:
            fields = declare()
            apps[entry.name] = spec_from_fields(entry.name, {k: str(v) for k, v in fields.items()}, rootdir)
        except (ValueError, SpecError, AttributeError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return apps


def start_order(
    names: Iterable[str], specs: Mapping[str, AppSpec], *, servers: Collection[str] = ()
) -> list[list[str]]:
    """``names`` and everything they depend on, in waves: each wave's apps depend only on earlier
    waves' (so a wave may start in parallel).  A dependency that is not an app but one of the
    third-party ``servers`` depends on nothing: it is in the first wave.  :class:`ConfigError` on an
    unknown dependency or a cycle, naming the path."""
    depth: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> int:
        if name in path:
            raise ConfigError(f"apps depend on each other in a cycle: {' -> '.join((*path, name))}")
        if name not in specs and name in servers:
            depth[name] = 0
            return 0
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            where = f"{path[-1]}'s depends_on names" if path else "no app named"
            others = f"; servers: {', '.join(sorted(servers))}" if servers else ""
            raise ConfigError(f"{where} {name!r}, which is not declared; declared apps: {known}{others}")
        if name not in depth:
            depth[name] = 1 + max((visit(dep, (*path, name)) for dep in specs[name].depends_on), default=-1)
        return depth[name]

    for name in names:
        visit(name, ())
    waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name, level in depth.items():
        waves[level].append(name)
    return waves
