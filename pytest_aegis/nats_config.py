"""From a :class:`~pytest_aegis.nats_spec.NatsSpec` to a nats-server config and
the client credentials that match it.

:func:`prepare` makes the *material* for a spec once (passwords, tokens, nkeys,
operator/account/user JWTs, certificate files) and :func:`render` writes the
server config for given ports, so a restart reuses the same material, port
and JetStream store.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aegis import nats_auth
from pytest_aegis.certs import AegisCA, CertFiles
from pytest_aegis.nats_spec import DEFAULT_USER, NatsSpec, Permissions

LOOPBACK = "127.0.0.1"
RANDOM_PORT = -1


@dataclass(frozen=True)
class Identity:
    """One way to authenticate: the ``nats.connect`` keywords that carry it."""

    name: str
    connect_kwargs: Mapping[str, Any]


@dataclass
class NatsMaterial:
    """Everything a server of one spec needs, and what its clients need to match."""

    spec: NatsSpec
    directory: Path
    default: Identity
    users: dict[str, Identity]
    auth_config: dict[str, Any]
    operator: nats_auth.OperatorTrust | None = None
    server_files: CertFiles | None = None
    ca_file: Path | None = None
    client_tls: ssl.SSLContext | None = None
    client_cert_files: CertFiles | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def identity(self, name: str | None) -> Identity:
        if name is None or name == self.default.name:
            return self.default
        try:
            return self.users[name]
        except KeyError:
            known = ", ".join([self.default.name, *self.users]) or "none"
            raise KeyError(f"no user {name!r} on this server; its users: {known}") from None


def _write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _perm_block(permissions: Permissions | None) -> dict[str, Any]:
    return {"permissions": permissions.to_config()} if permissions else {}


def _userpass(spec: NatsSpec) -> tuple[Identity, dict[str, Identity], dict[str, Any]]:
    password = secrets.token_urlsafe(18)
    entries = [{"user": DEFAULT_USER, "password": password, **_perm_block(spec.permissions)}]
    users: dict[str, Identity] = {}
    for user in spec.users:
        user_password = user.password or secrets.token_urlsafe(18)
        entries.append({"user": user.name, "password": user_password, **_perm_block(user.permissions)})
        users[user.name] = Identity(user.name, {"user": user.name, "password": user_password})
    default = Identity(DEFAULT_USER, {"user": DEFAULT_USER, "password": password})
    return default, users, {"authorization": {"users": entries}}


def _nkey(spec: NatsSpec, directory: Path) -> tuple[Identity, dict[str, Identity], dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    identities: dict[str, Identity] = {}
    for name, permissions in [
        (DEFAULT_USER, spec.permissions),
        *((u.name, u.permissions) for u in spec.users),
    ]:
        key = nats_auth.new_nkey_user()
        seed_file = _write_secret(directory / f"{name}.nk", key.seed + "\n")
        entries.append({"nkey": key.public_key, **_perm_block(permissions)})
        identities[name] = Identity(name, {"nkeys_seed": str(seed_file)})
    default = identities.pop(DEFAULT_USER)
    return default, identities, {"authorization": {"users": entries}}


def _jwt(
    spec: NatsSpec, directory: Path
) -> tuple[Identity, dict[str, Identity], dict[str, Any], nats_auth.OperatorTrust]:
    trust = nats_auth.OperatorTrust.create()
    identities: dict[str, Identity] = {}
    for name, permissions in [
        (DEFAULT_USER, spec.permissions),
        *((u.name, u.permissions) for u in spec.users),
    ]:
        creds = trust.issue_user(name, permissions=permissions.to_config() if permissions else None)
        identities[name] = Identity(name, {"user_credentials": str(creds.write(directory / f"{name}.creds"))})
    default = identities.pop(DEFAULT_USER)
    return default, identities, {"operator_block": trust.server_config_block()}, trust


def prepare(spec: NatsSpec, directory: Path, ca: AegisCA | None) -> NatsMaterial:
    """Make the credentials and certificate files for a server of ``spec``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    operator = None
    if spec.auth == "userpass":
        default, users, auth_config = _userpass(spec)
    elif spec.auth == "token":
        token = secrets.token_urlsafe(24)
        default, users, auth_config = (
            Identity("token", {"token": token}),
            {},
            {"authorization": {"token": token}},
        )
    elif spec.auth == "nkey":
        default, users, auth_config = _nkey(spec, directory)
    elif spec.auth == "jwt":
        default, users, auth_config, operator = _jwt(spec, directory)
    else:
        default, users, auth_config = Identity("anonymous", {}), {}, {}
    material = NatsMaterial(spec, directory, default, users, auth_config, operator=operator)
    if spec.tls:
        if ca is None:
            raise ValueError("a TLS server needs the session CA")
        material.server_files = ca.server_cert_files(spec.server_cert)
        material.ca_file = ca.ca_path
        if spec.mtls:
            material.client_cert_files = ca.client_cert_files
            material.client_tls = ca.shared_mtls_client_context
        else:
            material.client_tls = ca.shared_client_context
    return material


# -- the config file ---------------------------------------------------------


def _conf_value(value: Any, indent: str = "") -> str:
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
        body = "".join(f"{inner}{key}: {_conf_value(item, inner)}\n" for key, item in value.items())
        return "{\n" + body + indent + "}"
    if isinstance(value, list | tuple):
        body = "".join(f"{inner}{_conf_value(item, inner)}\n" for item in value)
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
    if spec.jetstream:
        conf["jetstream"] = {
            "store_dir": str(store_dir),
            "max_memory_store": 256 * 1024 * 1024,
            "max_file_store": 2 * 1024 * 1024 * 1024,
        }
    if material.server_files is not None:
        tls: dict[str, Any] = {
            "cert_file": str(material.server_files.cert),
            "key_file": str(material.server_files.key),
            "timeout": 2,
        }
        if spec.mtls:
            tls |= {"ca_file": str(material.ca_file), "verify": True}
        conf["tls"] = tls
    operator_block = material.auth_config.get("operator_block")
    conf |= {key: value for key, value in material.auth_config.items() if key != "operator_block"}
    lines = [f"{key}: {_conf_value(value)}" for key, value in conf.items()]
    if operator_block:
        lines.append(operator_block)
    return "\n".join(lines) + "\n"
