"""Live config reloads of a NATS server: :func:`reload_server`, behind :meth:`NatsServer.reload`.

The changes (:data:`CHANGES`) are checked against the server's spec, the new state is applied to
the server's material *in place* (so the handle, every view of it, a cluster's entry and a later
restart all use it), the backend rewrites the config and signals the server (SIGHUP, what
``nats-server --signal reload`` sends), and the server's own log lines after the signal say how it
went: ``Reloaded server configuration``, or ``Failed to reload server configuration: <why>``.  When
it did not reload, the material and the config on disk are put back: the server still runs on its
old config, and the handle still matches it.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_aegis.certs import SERVER_CERT_KINDS, CertFiles
from pytest_aegis.errors import NatsReloadError, SpecError, WaitTimeout
from pytest_aegis.natsd.auth import DEFAULT_USER, Identity
from pytest_aegis.natsd.material import NatsMaterial
from pytest_aegis.natsd.spec import NatsSpec, Permissions, build_spec
from pytest_aegis.waiting import wait_until

if TYPE_CHECKING:  # the handle calls this module
    from pytest_aegis.natsd.server import NatsServer

#: What ``reload(**changes)`` may change, and how.
CHANGES: Mapping[str, str] = {
    "password": "the default user's new password (auth='userpass')",
    "users": "the extra users, replacing them all, in the spec's `users` shape; a user kept without "
    "a password keeps its own (auth='userpass')",
    "permissions": "the default user's permissions, in the spec's shape; None: none (auth='userpass')",
    "server_cert": f"the certificate the server presents, newly issued: {'|'.join(SERVER_CERT_KINDS)} "
    "(tls=True)",
}
#: The changes to the users and their credentials (the config lists them with ``auth="userpass"``).
CREDENTIAL_CHANGES = ("password", "users", "permissions")
#: What nats-server logs once it runs on the reloaded config, and when it refused it.
RELOADED = "Reloaded server configuration"
RELOAD_FAILED = "Failed to reload server configuration"
#: Seconds a reload may take to be logged.
RELOAD_TIMEOUT = 10.0
#: Where :func:`build_spec`'s message lists the marker's keywords (a reload has its own).
_SPEC_KEYWORDS = "\nvalid keywords:"


def valid_changes() -> str:
    return "valid changes: " + "; ".join(f"{key} ({meaning})" for key, meaning in CHANGES.items())


@dataclass(frozen=True)
class ReloadState:
    """The part of a server's material a reload changes."""

    spec: NatsSpec
    default: Identity
    users: dict[str, Identity]
    server_config: dict[str, Any]
    server_files: CertFiles | None

    @classmethod
    def of(cls, material: NatsMaterial) -> ReloadState:
        return cls(
            material.spec, material.default, material.users, material.server_config, material.server_files
        )

    def put(self, material: NatsMaterial) -> None:
        """Make ``material`` this state (new objects, never a shared one changed: a cluster's
        nodes share their credentials' dicts until one of them is reloaded)."""
        material.spec, material.default, material.users = self.spec, self.default, self.users
        material.server_config, material.server_files = self.server_config, self.server_files


def check_changes(spec: NatsSpec, changes: Mapping[str, Any], where: str) -> None:
    """Raise :class:`SpecError` naming a change that is unknown or does not apply to ``spec``."""
    unknown = [key for key in changes if key not in CHANGES]
    if unknown:
        raise SpecError(f"{where}: unknown change(s) {', '.join(map(repr, unknown))}; {valid_changes()}")
    credentials = [key for key in CREDENTIAL_CHANGES if key in changes]
    if credentials and spec.auth != "userpass":
        only = "server_cert only" if spec.tls else "nothing of it"
        raise SpecError(
            f"{where}: {', '.join(credentials)} can change on reload with auth='userpass' only; this "
            f"server has auth={spec.auth!r} (a reload can change {only}); {valid_changes()}"
        )
    if "server_cert" in changes and not spec.tls:
        raise SpecError(f"{where}: server_cert needs a TLS server; this one has tls=False")
    password = changes.get("password")
    if "password" in changes and (not isinstance(password, str) or not password):
        raise SpecError(f"{where}: password must be a non-empty string (got {password!r})")


def next_state(material: NatsMaterial, changes: Mapping[str, Any], where: str) -> ReloadState:
    """The state ``changes`` make of ``material``'s (validated; nothing applied yet)."""
    spec = material.spec
    updates = {key: changes[key] for key in ("users", "permissions", "server_cert") if key in changes}
    if updates:
        try:
            spec = build_spec({**spec.model_dump(), **updates}, where=where)
        except SpecError as exc:  # its problems, with the reload's valid keys instead of the marker's
            problems = str(exc).split(_SPEC_KEYWORDS)[0]
            raise SpecError(f"{problems}\n{valid_changes()}") from None
    state = dataclasses.replace(ReloadState.of(material), spec=spec)
    if any(key in changes for key in CREDENTIAL_CHANGES):
        state = _with_users(state, changes.get("password"))
    if "server_cert" in changes:
        if material.ca is None:
            raise SpecError(f"{where}: server_cert needs the session CA, which this server's material lacks")
        state = dataclasses.replace(state, server_files=material.ca.new_server_cert_files(spec.server_cert))
    return state


def _with_users(state: ReloadState, password: str | None) -> ReloadState:
    """``state`` with the identities and ``authorization`` block of its spec's users (userpass): a
    user kept keeps its password unless the change gives one, a new one gets its own or a random one."""
    current = {state.default.name: state.default, **state.users}

    def password_of(name: str, given: str | None) -> str:
        kept = current[name].connect_kwargs.get("password") if name in current else None
        return given or (str(kept) if kept else secrets.token_urlsafe(18))

    spec = state.spec
    passwords = {DEFAULT_USER: password_of(DEFAULT_USER, password)}
    passwords |= {user.name: password_of(user.name, user.password) for user in spec.users}
    permissions: dict[str, Permissions | None] = {DEFAULT_USER: spec.permissions}
    permissions |= {user.name: user.permissions for user in spec.users}
    entries = [
        {"user": name, "password": secret, **_permission_block(permissions[name])}
        for name, secret in passwords.items()
    ]
    users = {name: Identity(name, {"user": name, "password": secret}) for name, secret in passwords.items()}
    default = users.pop(DEFAULT_USER)
    server_config = {**state.server_config, "authorization": {"users": entries}}
    return dataclasses.replace(state, default=default, users=users, server_config=server_config)


def _permission_block(permissions: Permissions | None) -> dict[str, Any]:
    return {"permissions": permissions.to_config()} if permissions else {}


def reload_server(server: NatsServer, changes: Mapping[str, Any], *, timeout: float) -> list[str]:
    """Apply ``changes`` to ``server``'s config and have it reload it; its log lines from the signal
    to ``Reloaded server configuration``.  :class:`SpecError` for a bad change,
    :class:`NatsReloadError` when it did not reload (nothing changed then)."""
    where = f"{server.name}.reload()"
    check_changes(server.spec, changes, where)
    if not server.is_running or server.is_paused:
        why = "it is paused (resume() it first)" if server.is_running else "it is not running"
        raise NatsReloadError(server.name, why, [])
    material = server.material
    previous, state = ReloadState.of(material), next_state(material, changes, where)
    offset = server.log_size()
    state.put(material)
    try:
        server.runtime.reload_config()  # the external backend refuses here
    except BaseException:
        previous.put(material)
        raise
    try:
        return await_reload(server, offset, timeout)
    except NatsReloadError:
        previous.put(material)
        server.runtime.reload_config(signal=False)
        raise


def lines_since(server: NatsServer, offset: int) -> list[str]:
    return server.logs().encode()[offset:].decode(errors="replace").splitlines()


def await_reload(server: NatsServer, offset: int, timeout: float) -> list[str]:
    """The log lines after ``offset`` up to the server's ``Reloaded server configuration``; raise
    :class:`NatsReloadError` when it logged that it failed, exited, or logged neither in time."""

    def settled(lines: list[str]) -> bool:
        return not server.is_running or any(RELOADED in line or RELOAD_FAILED in line for line in lines)

    try:
        lines = wait_until(
            lambda: lines_since(server, offset),
            f"{server.name} to log {RELOADED!r}",
            timeout=timeout,
            ok=settled,
            max_interval=0.05,
        )
    except WaitTimeout:
        reason = f"it logged neither {RELOADED!r} nor {RELOAD_FAILED!r} within {timeout:g}s"
        raise NatsReloadError(server.name, reason, lines_since(server, offset)) from None
    for index, line in enumerate(lines):
        if RELOAD_FAILED in line:
            raise NatsReloadError(server.name, line.partition(RELOAD_FAILED)[2].lstrip(": "), lines)
        if RELOADED in line:
            return lines[: index + 1]
    raise NatsReloadError(server.name, "it exited before it logged the reload", lines)
