"""What a secured NATS server should look like: :class:`NatsSpec`.

A spec is built from ``@pytest.mark.nats_secure(...)`` keywords (or a fixture
factory's), validated once, frozen and hashable: servers with equal specs are
started once per session and shared.  Bad keywords raise :class:`SpecError`
naming the keyword, what was wrong and the valid values; the plugin turns it
into a ``pytest.UsageError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pytest_aegis.certs import ServerCertKind

AuthMode = Literal["none", "userpass", "token", "nkey", "jwt"]
AUTH_MODES: tuple[str, ...] = ("none", "userpass", "token", "nkey", "jwt")
DEFAULT_USER = "aegis"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SpecError(ValueError):
    """A ``nats_secure`` spec that cannot be built; the message says how to fix it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class SubjectRules(_Frozen):
    """Allow/deny subject lists, as in nats-server's ``permissions`` block."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _list_is_allow(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {"allow": tuple(value)}
        return value

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _one_subject_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("allow", "deny")
    @classmethod
    def _subjects_are_valid(cls, subjects: tuple[str, ...]) -> tuple[str, ...]:
        for subject in subjects:
            if not subject or any(ch.isspace() for ch in subject) or '"' in subject:
                raise ValueError(
                    f"invalid subject {subject!r}: subjects are non-empty, without spaces or quotes"
                )
        return subjects

    def to_config(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.allow:
            out["allow"] = list(self.allow)
        if self.deny:
            out["deny"] = list(self.deny)
        return out


class Permissions(_Frozen):
    """``{"publish": {...}, "subscribe": {...}}``; a list means "allow only these"."""

    publish: SubjectRules | None = None
    subscribe: SubjectRules | None = None

    def to_config(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        if self.publish is not None:
            out["publish"] = self.publish.to_config()
        if self.subscribe is not None:
            out["subscribe"] = self.subscribe.to_config()
        return out


class UserSpec(_Frozen):
    """An extra user: its name, optional password (userpass mode) and permissions."""

    name: str = Field(pattern=_NAME_PATTERN)
    password: str | None = None
    permissions: Permissions | None = None


class NatsSpec(_Frozen):
    """The security configuration of one NATS server.

    The defaults (no keywords) are what ``@pytest.mark.nats_secure`` means:
    TLS, user/password auth and JetStream.
    """

    auth: AuthMode = "userpass"
    tls: bool = True
    mtls: bool = False
    server_cert: ServerCertKind = "valid"
    permissions: Permissions | None = None
    users: tuple[UserSpec, ...] = ()
    jetstream: bool = True

    @field_validator("users", mode="before")
    @classmethod
    def _users_from_mapping(cls, value: Any) -> Any:
        # Accept {"alice": {...}} as well as [{"name": "alice", ...}].
        if isinstance(value, Mapping):
            return tuple({"name": name, **(body or {})} for name, body in value.items())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NatsSpec:
        if self.mtls and not self.tls:
            raise ValueError("mtls=True needs tls=True (mutual TLS is TLS with client certificates)")
        if self.server_cert != "valid" and not self.tls:
            raise ValueError(f"server_cert={self.server_cert!r} needs tls=True")
        if self.auth in ("none", "token") and (self.permissions or self.users):
            raise ValueError(
                f"permissions and users need per-user identities, which auth={self.auth!r} has not; "
                "use auth='userpass', 'nkey' or 'jwt'"
            )
        names = [user.name for user in self.users]
        if DEFAULT_USER in names or len(set(names)) != len(names):
            raise ValueError(
                f"user names must be unique and not {DEFAULT_USER!r} (the default user): {names}"
            )
        if self.auth != "userpass" and any(user.password for user in self.users):
            raise ValueError(f"a user password only applies to auth='userpass', not auth={self.auth!r}")
        return self

    @classmethod
    def plain(cls) -> NatsSpec:
        """No auth, no TLS, JetStream on: what the ``nats_server`` fixture runs."""
        return cls(auth="none", tls=False)

    @property
    def label(self) -> str:
        """A short human name, e.g. ``tls+userpass+js`` or ``mtls+jwt[expired]``."""
        parts = ["mtls" if self.mtls else "tls" if self.tls else "plain"]
        if self.auth != "none":
            parts.append(self.auth)
        if self.jetstream:
            parts.append("js")
        label = "+".join(parts)
        if self.server_cert != "valid":
            label += f"[{self.server_cert}]"
        if self.permissions or self.users:
            label += "+perms"
        return label


def build_spec(kwargs: Mapping[str, Any], *, where: str = "@pytest.mark.nats_secure") -> NatsSpec:
    """Validate keywords into a :class:`NatsSpec`; raise :class:`SpecError` on bad input."""
    try:
        return NatsSpec.model_validate(dict(kwargs))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "spec"
            problems.append(f"  {loc}: {_explain(err)}")
        valid = (
            "valid keywords: auth (none|userpass|token|nkey|jwt), tls (bool), mtls (bool), "
            "server_cert (valid|expired|not_yet_valid|wrong_host|untrusted), permissions, users, "
            "jetstream (bool)"
        )
        raise SpecError(f"{where}: invalid arguments\n" + "\n".join(problems) + f"\n{valid}") from None


def _explain(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown keyword (got {err['input']!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and err["type"] not in ("missing",):
        message += f" (got {err['input']!r})"
    return message
