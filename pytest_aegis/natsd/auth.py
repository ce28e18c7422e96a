"""The NATS auth modes, one table: what each mode makes for a spec and how its credentials reach
a client and a service.

:data:`AUTH_MODES` is the single source of the ``auth`` keyword's valid values (the spec's type,
the marker's help line, the usage errors and the docs are derived from it).  Adding a mode is one
:class:`AuthMode` entry here and the function that renders its credentials.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the spec validates its auth keyword against this table; keys load on use
    from pytest_aegis.natsd.operator import OperatorTrust
    from pytest_aegis.natsd.spec import NatsSpec, Permissions

#: The default user's name in every mode with named users.
DEFAULT_USER = "aegis"
#: The system account's user (``connect(as_user=SYSTEM_USER)``), in the modes that can have one.
SYSTEM_USER = "aegis-system"
#: The system account's name in the modes configured by accounts (``jwt`` names it by its key).
SYSTEM_ACCOUNT = "SYS"


@dataclass(frozen=True)
class Identity:
    """One way to authenticate: the ``nats.connect`` keywords that carry it."""

    name: str
    connect_kwargs: Mapping[str, Any]


@dataclass
class Credentials:
    """What a mode made for a spec: the default identity, the extra users' identities, the
    server's authorization config, the operator (``jwt`` only) and the system account's user
    (``None`` where the mode cannot have one: see :func:`_system_account`)."""

    default: Identity
    users: dict[str, Identity] = field(default_factory=dict)
    server_config: dict[str, Any] = field(default_factory=dict)
    operator: OperatorTrust | None = None
    system: Identity | None = None


@dataclass(frozen=True)
class AuthMode:
    """One ``auth=`` value.

    ``per_user``: it has per-user identities, so ``permissions`` and ``users`` apply;
    ``user_passwords``: an extra user may bring its own password; ``env``: which
    ``nats.connect`` keyword becomes which ``AEGIS_NATS_<suffix>`` variable for a service.
    """

    name: str
    help: str
    make: Callable[[NatsSpec, Path], Credentials]
    per_user: bool = False
    user_passwords: bool = False
    env: Mapping[str, str] = field(default_factory=dict)


def write_secret(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _perm_block(permissions: Permissions | None) -> dict[str, Any]:
    return {"permissions": permissions.to_config()} if permissions else {}


def _named(spec: NatsSpec) -> list[tuple[str, Permissions | None]]:
    """The default user first, then the spec's extra users, with their permissions."""
    return [(DEFAULT_USER, spec.permissions), *((user.name, user.permissions) for user in spec.users)]


def _system_account() -> tuple[Identity, dict[str, Any]]:
    """A user of the system account (what JetStream's server API, e.g. peer removal, needs) and
    the config that makes it, beside the users of the default account.  Not for ``none`` (with any
    user configured, nats-server makes every client authenticate) nor ``token`` (nats-server: "Can
    not have a token and accounts")."""
    password = secrets.token_urlsafe(18)
    config = {
        "accounts": {SYSTEM_ACCOUNT: {"users": [{"user": SYSTEM_USER, "password": password}]}},
        "system_account": SYSTEM_ACCOUNT,
    }
    return Identity(SYSTEM_USER, {"user": SYSTEM_USER, "password": password}), config


def _none(spec: NatsSpec, directory: Path) -> Credentials:
    return Credentials(Identity("anonymous", {}))


def _userpass(spec: NatsSpec, directory: Path) -> Credentials:
    passwords = {DEFAULT_USER: secrets.token_urlsafe(18)}
    passwords |= {user.name: user.password or secrets.token_urlsafe(18) for user in spec.users}
    entries = [
        {"user": name, "password": passwords[name], **_perm_block(permissions)}
        for name, permissions in _named(spec)
    ]
    identities = {name: Identity(name, {"user": name, "password": pw}) for name, pw in passwords.items()}
    default = identities.pop(DEFAULT_USER)
    system, accounts = _system_account()
    return Credentials(default, identities, {"authorization": {"users": entries}, **accounts}, system=system)


def _token(spec: NatsSpec, directory: Path) -> Credentials:
    token = secrets.token_urlsafe(24)
    return Credentials(Identity("token", {"token": token}), {}, {"authorization": {"token": token}})


def _nkey(spec: NatsSpec, directory: Path) -> Credentials:
    from pytest_aegis.natsd.jwt import new_nkey_user

    entries: list[dict[str, Any]] = []
    identities: dict[str, Identity] = {}
    for name, permissions in _named(spec):
        key = new_nkey_user()
        seed_file = write_secret(directory / f"{name}.nk", key.seed + "\n")
        entries.append({"nkey": key.public_key, **_perm_block(permissions)})
        identities[name] = Identity(name, {"nkeys_seed": str(seed_file)})
    default = identities.pop(DEFAULT_USER)
    system, accounts = _system_account()
    return Credentials(default, identities, {"authorization": {"users": entries}, **accounts}, system=system)


def _jwt(spec: NatsSpec, directory: Path) -> Credentials:
    from pytest_aegis.natsd.operator import OperatorTrust

    trust = OperatorTrust.create()
    identities: dict[str, Identity] = {}
    for name, permissions in _named(spec):
        creds = trust.issue_user(name, permissions=permissions.to_config() if permissions else None)
        identities[name] = Identity(name, {"user_credentials": str(creds.write(directory / f"{name}.creds"))})
    default = identities.pop(DEFAULT_USER)
    system_creds = trust.issue_system_user(SYSTEM_USER).write(directory / f"{SYSTEM_USER}.creds")
    system = Identity(SYSTEM_USER, {"user_credentials": str(system_creds)})
    return Credentials(default, identities, operator=trust, system=system)


AUTH_MODES: Mapping[str, AuthMode] = {
    mode.name: mode
    for mode in (
        AuthMode("none", "no authentication", _none),
        AuthMode(
            "userpass",
            "user and password",
            _userpass,
            per_user=True,
            user_passwords=True,
            env={"user": "USER", "password": "PASSWORD"},
        ),
        AuthMode("token", "a bearer token", _token, env={"token": "TOKEN"}),
        AuthMode(
            "nkey", "nkey users (seed files)", _nkey, per_user=True, env={"nkeys_seed": "NKEY_SEED_FILE"}
        ),
        AuthMode(
            "jwt",
            "operator mode: user .creds (JWT + seed) issued by the harness with nkeys",
            _jwt,
            per_user=True,
            env={"user_credentials": "CREDS_FILE"},
        ),
    )
}

#: Every credential keyword a mode may put into ``nats.connect`` -> its env-variable suffix.
CREDENTIAL_ENV: Mapping[str, str] = {
    key: env for mode in AUTH_MODES.values() for key, env in mode.env.items()
}
