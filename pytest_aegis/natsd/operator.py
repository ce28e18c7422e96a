"""Operator mode for NATS ``jwt`` auth: an operator, its accounts and users, and ``.creds`` files.

* :meth:`OperatorTrust.create` -> an operator, a system account ``SYS`` and an
  application account ``APP`` (JetStream enabled), and
  :meth:`OperatorTrust.server_config_block` for the memory resolver.
* :meth:`OperatorTrust.issue_user` / :meth:`OperatorTrust.issue_foreign_user`
  -> :class:`UserCreds`, whose :meth:`UserCreds.creds_text` is the standard
  ``.creds`` format read by ``nats.connect(user_credentials=...)``.

What nats-server v2.15.1 answers (checked against a real server with nats-py
2.16; the server's protocol line first, then what nats-py reports):

* user signed by an account the operator never signed/preloaded:
  ``-ERR 'Authorization Violation'``; ``nats.connect`` raises
  ``nats.errors.Error("nats: 'Authorization Violation'")`` (server log:
  ``Account fetch failed: account missing`` + ``authentication error``);
* user JWT already expired (``expires_at`` in the past), or not yet valid
  (``not_before`` in the future): the same ``-ERR 'Authorization Violation'``
  (server log: ``User JWT no longer valid: &{Issues:[claim is expired]}``);
* a JWT that expires *while connected*: ``-ERR 'User Authentication Expired'``,
  then the server closes the connection; nats-py does not call ``error_cb``
  but leaves ``nc.last_error == Error("nats: user authentication expired")``;
* denied publish / subscribe: ``-ERR 'Permissions Violation for Publish to
  "secret.x"'`` / ``-ERR 'Permissions Violation for Subscription to
  "secret.>"'``; the connection stays up and nats-py hands ``error_cb`` an
  ``Error`` whose text it has **lower-cased**: ``nats: permissions violation
  for publish to "secret.x"`` (so match case-insensitively).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import nkeys

from pytest_aegis.natsd.jwt import JWT_VERSION, KeyPair, encode_jwt, new_keypair

__all__ = ["OperatorTrust", "PermissionsSpec", "UserCreds"]

NO_LIMIT = -1
"""nats-io/jwt's ``NoLimit``."""

_PERMISSION_KEYS: Mapping[str, str] = {"publish": "pub", "subscribe": "sub"}
_RULE_KEYS = ("allow", "deny")
# Characters that survive nats-server config quoting without escapes: base64url
# (JWT parts and dots) and base32 (nkeys).
_CONF_SAFE = re.compile(r"[A-Za-z0-9_.\-]+")

PermissionRuleSpec: TypeAlias = Mapping[str, Sequence[str] | str] | Sequence[str] | str
PermissionsSpec: TypeAlias = Mapping[str, PermissionRuleSpec]
"""nats-server config shape: ``{"publish": {"allow": [...], "deny": [...]},
"subscribe": {...}}``; a list (or a single subject) is shorthand for ``allow``."""

_CREDS_TEMPLATE = """\
-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""


# --------------------------------------------------------------------------- permissions


def _check_subject(subject: object, *, where: str, allow_queue: bool) -> str:
    if not isinstance(subject, str) or not subject:
        raise ValueError(f"{where}: subjects must be non-empty strings, got {subject!r}")
    tokens = subject.split(" ")
    if len(tokens) > (2 if allow_queue else 1) or any(not token for token in tokens):
        shape = "'subject' or 'subject queue'" if allow_queue else "a subject without spaces"
        raise ValueError(f"{where}: {subject!r} is not {shape}")
    name = tokens[0]
    if name.startswith(".") or name.endswith(".") or ".." in name:
        raise ValueError(f"{where}: {subject!r} has an empty token (leading, trailing or double '.')")
    return subject


def _subject_list(value: object, *, where: str, allow_queue: bool) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list of subjects, got {type(value).__name__}")
    return [_check_subject(subject, where=where, allow_queue=allow_queue) for subject in value]


def _permission_rule(spec: object, *, where: str, allow_queue: bool) -> dict[str, list[str]]:
    """``{"allow": [...], "deny": [...]}`` or shorthand -> JWT ``Permission`` (empty lists omitted)."""
    if not isinstance(spec, Mapping):
        spec = {"allow": spec}
    unknown = sorted(str(key) for key in spec if key not in _RULE_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(_RULE_KEYS)}"
        )
    rule: dict[str, list[str]] = {}
    for key in _RULE_KEYS:
        subjects = _subject_list(spec.get(key, []), where=f"{where}.{key}", allow_queue=allow_queue)
        if subjects:
            rule[key] = subjects
    return rule


def _jwt_permissions(permissions: PermissionsSpec | None) -> dict[str, dict[str, list[str]]]:
    """Translate nats-server config permissions into the user JWT's ``pub``/``sub`` objects.

    ``{"publish": {"deny": ["secret.>"]}, "subscribe": ["app.>"]}`` becomes
    ``{"pub": {"deny": ["secret.>"]}, "sub": {"allow": ["app.>"]}}``.  Both
    objects are always present (empty means no restriction), as nats-io/jwt
    writes them.
    """
    translated: dict[str, dict[str, list[str]]] = {"pub": {}, "sub": {}}
    if permissions is None:
        return translated
    if not isinstance(permissions, Mapping):
        raise ValueError(
            f"permissions must be a mapping with keys {', '.join(_PERMISSION_KEYS)}, "
            f"got {type(permissions).__name__}"
        )
    unknown = sorted(str(key) for key in permissions if key not in _PERMISSION_KEYS)
    if unknown:
        raise ValueError(
            f"permissions: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(_PERMISSION_KEYS)}"
        )
    for key, jwt_key in _PERMISSION_KEYS.items():
        if key in permissions:
            allow_queue = key == "subscribe"
            translated[jwt_key] = _permission_rule(permissions[key], where=key, allow_queue=allow_queue)
    return translated


# --------------------------------------------------------------------------- claims


def _epoch_seconds(moment: datetime, *, what: str) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(UTC)), got naive {moment!r}")
    seconds = int(moment.timestamp())
    if seconds <= 0:
        raise ValueError(f"{what} must be after 1970-01-01T00:00:01Z, got {moment.isoformat()}")
    return seconds


def _operator_claims(operator: str, name: str, system_account: str) -> dict[str, Any]:
    nats = {"system_account": system_account, "type": "operator", "version": JWT_VERSION}
    return {"name": name, "sub": operator, "nats": nats}


def _account_limits(*, jetstream: bool) -> dict[str, Any]:
    """nats-io/jwt's unlimited ``OperatorLimits``; JetStream on means unlimited JetStream too."""
    limits: dict[str, Any] = {
        "subs": NO_LIMIT,
        "data": NO_LIMIT,
        "payload": NO_LIMIT,
        "imports": NO_LIMIT,
        "exports": NO_LIMIT,
        "wildcards": True,
        "conn": NO_LIMIT,
        "leaf": NO_LIMIT,
    }
    if jetstream:
        limits.update(mem_storage=NO_LIMIT, disk_storage=NO_LIMIT, streams=NO_LIMIT, consumer=NO_LIMIT)
    return limits


def _account_claims(account: str, name: str, *, jetstream: bool) -> dict[str, Any]:
    nats = {
        "limits": _account_limits(jetstream=jetstream),
        "default_permissions": {"pub": {}, "sub": {}},
        "authorization": {},
        "type": "account",
        "version": JWT_VERSION,
    }
    return {"name": name, "sub": account, "nats": nats}


def _user_claims(
    user: str,
    name: str,
    *,
    permissions: PermissionsSpec | None = None,
    expires_at: datetime | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    nats = {
        **_jwt_permissions(permissions),
        "subs": NO_LIMIT,
        "data": NO_LIMIT,
        "payload": NO_LIMIT,
        "type": "user",
        "version": JWT_VERSION,
    }
    claims: dict[str, Any] = {"name": name, "sub": user, "nats": nats}
    if expires_at is not None:
        claims["exp"] = _epoch_seconds(expires_at, what="expires_at")
    if not_before is not None:
        claims["nbf"] = _epoch_seconds(not_before, what="not_before")
    if "exp" in claims and "nbf" in claims and claims["nbf"] >= claims["exp"]:
        raise ValueError(f"not_before ({not_before}) must be before expires_at ({expires_at})")
    return claims


# --------------------------------------------------------------------------- creds


@dataclass(frozen=True)
class UserCreds:
    """A JWT user: its ``jwt``, its nkey ``seed`` and ``public_key`` (the JWT's ``sub``)."""

    name: str
    jwt: str = field(repr=False)
    seed: str = field(repr=False)
    public_key: str

    def creds_text(self) -> str:
        """The standard ``.creds`` file (as ``nsc generate creds`` writes it).

        ``nats.connect(user_credentials=path)`` reads it from a file; for an
        in-memory connect wrap it: ``user_credentials=nats.aio.client.RawCredentials(text)``.
        """
        return _CREDS_TEMPLATE.format(jwt=self.jwt, seed=self.seed)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`creds_text` to ``path`` with mode 0600 (also when the file existed)."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(self.creds_text())
        return target


def _issue(
    account: KeyPair,
    name: str,
    *,
    permissions: PermissionsSpec | None = None,
    expires_at: datetime | None = None,
    not_before: datetime | None = None,
) -> UserCreds:
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    claims = _user_claims(
        user.public_key, name, permissions=permissions, expires_at=expires_at, not_before=not_before
    )
    return UserCreds(
        name=name, jwt=encode_jwt(claims, account.seed), seed=user.seed, public_key=user.public_key
    )


# --------------------------------------------------------------------------- operator mode


def _conf_quote(value: str) -> str:
    if not _CONF_SAFE.fullmatch(value):
        raise ValueError(f"refusing to put {value!r} in a nats-server config: unexpected characters")
    return f'"{value}"'


@dataclass(frozen=True)
class OperatorTrust:
    """An operator-mode trust chain: operator -> ``SYS`` + ``APP`` accounts -> users.

    Build it with :meth:`create`.  ``account`` (``APP``) has unlimited
    JetStream; ``system_account`` (``SYS``) has none.  The operator's seed is
    dropped after signing the two account JWTs: nothing else needs it.
    """

    name: str
    operator_public_key: str
    operator_jwt: str = field(repr=False)
    system_account: str
    system_account_jwt: str = field(repr=False)
    account: str
    account_jwt: str = field(repr=False)
    _account_key: KeyPair = field(repr=False)
    _system_key: KeyPair = field(repr=False)

    @classmethod
    def create(cls, name: str = "aegis") -> OperatorTrust:
        """Make a fresh operator ``name`` with a ``SYS`` and a JetStream-enabled ``APP`` account."""
        operator = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
        system = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        app = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        return cls(
            name=name,
            operator_public_key=operator.public_key,
            operator_jwt=encode_jwt(
                _operator_claims(operator.public_key, name, system.public_key), operator.seed
            ),
            system_account=system.public_key,
            system_account_jwt=encode_jwt(
                _account_claims(system.public_key, "SYS", jetstream=False), operator.seed
            ),
            account=app.public_key,
            account_jwt=encode_jwt(_account_claims(app.public_key, "APP", jetstream=True), operator.seed),
            _account_key=app,
            _system_key=system,
        )

    def resolver_preload(self) -> dict[str, str]:
        """Account public key -> account JWT, for ``resolver_preload``."""
        return {self.system_account: self.system_account_jwt, self.account: self.account_jwt}

    def server_config_block(self) -> str:
        """The nats-server config lines for operator mode with the memory resolver."""
        preload = "".join(
            f"  {_conf_quote(account)}: {_conf_quote(token)}\n"
            for account, token in self.resolver_preload().items()
        )
        return (
            f"operator: {_conf_quote(self.operator_jwt)}\n"
            f"system_account: {_conf_quote(self.system_account)}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n{preload}}}\n"
        )

    def issue_user(
        self,
        name: str,
        *,
        permissions: PermissionsSpec | None = None,
        expires_at: datetime | None = None,
        not_before: datetime | None = None,
    ) -> UserCreds:
        """Issue a user of the ``APP`` account (a new user nkey, JWT signed by ``APP``).

        ``permissions`` takes the nats-server config shape (see
        :data:`PermissionsSpec`) and ends up as the JWT's ``pub``/``sub``.
        ``expires_at``/``not_before`` must be timezone-aware; they become
        ``exp``/``nbf`` (whole seconds).  Invalid input raises :class:`ValueError`.
        """
        return _issue(
            self._account_key, name, permissions=permissions, expires_at=expires_at, not_before=not_before
        )

    def issue_system_user(self, name: str) -> UserCreds:
        """Issue a user of the ``SYS`` account: JetStream's server API (peer removal) and the
        ``$SYS`` requests answer it."""
        return _issue(self._system_key, name)

    def issue_foreign_user(self, name: str) -> UserCreds:
        """Issue a user signed by a brand-new account the operator never signed nor preloaded.

        Well-formed and correctly signed, but not trusted: the server rejects it.
        """
        return _issue(new_keypair(nkeys.PREFIX_BYTE_ACCOUNT), name)
