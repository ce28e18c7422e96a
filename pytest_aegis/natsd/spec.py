"""What a secured NATS server should look like: :class:`NatsSpec`, the single source of the
``@pytest.mark.nats_secure`` keywords.

A spec is built from the marker's keywords (or a fixture factory's), validated once, frozen and
hashable: servers with equal specs are started once per session and shared.  The marker's help
line (:func:`marker_help`), the usage error's list of valid keywords and the docs' table
(:func:`keywords`) are all derived from the model's fields, so a keyword or value is spelled
once.  Bad keywords raise :class:`~pytest_aegis.errors.SpecError` naming the keyword, what was
wrong and the valid values; the plugin turns it into a ``pytest.UsageError``.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pytest_aegis.certs import SERVER_CERT_KINDS, ServerCertKind
from pytest_aegis.errors import SpecError
from pytest_aegis.markers import MARKER
from pytest_aegis.natsd.auth import AUTH_MODES, DEFAULT_USER, SYSTEM_USER

if TYPE_CHECKING:
    AuthName = str
else:  # the valid values are the auth table's keys
    AuthName = Literal[tuple(AUTH_MODES)]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: nats-server's own lame-duck duration and grace period, in seconds.
LAME_DUCK_DEFAULTS = (120.0, 10.0)
#: The shortest lame-duck duration nats-server accepts, in seconds.
LAME_DUCK_MIN_DURATION = 30.0


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

    auth: Annotated[AuthName, Field(description="how clients authenticate")] = "userpass"
    tls: Annotated[bool, Field(description="clients must use TLS (certificate from the session CA)")] = True
    mtls: Annotated[bool, Field(description="clients must present a certificate from the session CA")] = False
    server_cert: Annotated[ServerCertKind, Field(description="the certificate the server presents")] = "valid"
    permissions: Annotated[
        Permissions | None,
        Field(
            description="the default user's permissions, nats-server shape: "
            '`{"publish": {"allow": [...], "deny": [...]}, "subscribe": {...}}`; a list means allow'
        ),
    ] = None
    users: Annotated[
        tuple[UserSpec, ...],
        Field(description='extra users: `{"reader": {"password": "...", "permissions": {...}}}`'),
    ] = ()
    jetstream: Annotated[bool, Field(description="JetStream on (file store in the server's temp dir)")] = True
    sync_interval: Annotated[
        str | None,
        Field(
            pattern=r"^(always|\d+(\.\d+)?(ms|s|m|h))$",
            description='how often JetStream fsyncs its store: `"always"` (every write) or a duration '
            'such as `"100ms"`, `"10s"` (nats-server\'s default: `"2m"`)',
        ),
    ] = None
    power_loss: Annotated[
        bool,
        Field(
            description="the JetStream store on a disk that loses every write not yet fsynced when "
            "`NatsServer.power_loss()` cuts the power (a FUSE filesystem: the test is skipped where "
            "FUSE is not usable)",
        ),
    ] = False
    lame_duck_duration: Annotated[
        float | None,
        Field(
            ge=LAME_DUCK_MIN_DURATION,
            description="seconds lame-duck mode (`NatsServer.lame_duck()`) may last: the server closes "
            "its clients spread over it (at most 1 s apart) and exits (nats-server's default: "
            f"{LAME_DUCK_DEFAULTS[0]:g}, its minimum: {LAME_DUCK_MIN_DURATION:g})",
        ),
    ] = None
    lame_duck_grace_period: Annotated[
        float | None,
        Field(
            ge=0,
            description="seconds in lame-duck mode before clients are closed; below the duration "
            f"(nats-server's default: {LAME_DUCK_DEFAULTS[1]:g})",
        ),
    ] = None

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
        mode = AUTH_MODES[self.auth]
        if not mode.per_user and (self.permissions or self.users):
            raise ValueError(
                f"permissions and users need per-user identities, which auth={self.auth!r} has not; "
                f"use auth={_either(name for name, other in AUTH_MODES.items() if other.per_user)}"
            )
        names = [user.name for user in self.users]
        if DEFAULT_USER in names or SYSTEM_USER in names or len(set(names)) != len(names):
            raise ValueError(
                f"user names must be unique and not {DEFAULT_USER!r} (the default user) nor "
                f"{SYSTEM_USER!r} (the system account's): {names}"
            )
        if self.sync_interval is not None and not self.jetstream:
            raise ValueError(f"sync_interval={self.sync_interval!r} needs jetstream=True")
        if self.power_loss and not self.jetstream:
            raise ValueError("power_loss=True needs jetstream=True (the JetStream store loses the writes)")
        duration = LAME_DUCK_DEFAULTS[0] if self.lame_duck_duration is None else self.lame_duck_duration
        grace = LAME_DUCK_DEFAULTS[1] if self.lame_duck_grace_period is None else self.lame_duck_grace_period
        if grace >= duration:
            raise ValueError(
                f"lame_duck_grace_period ({grace:g} s) must be below lame_duck_duration ({duration:g} s), "
                "as nats-server requires; a keyword left out has nats-server's default"
            )
        if not mode.user_passwords and any(user.password for user in self.users):
            with_passwords = _either(name for name, other in AUTH_MODES.items() if other.user_passwords)
            raise ValueError(f"a user password only applies to auth={with_passwords}, not auth={self.auth!r}")
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


def _either(names: Iterable[str]) -> str:
    """``'a', 'b' or 'c'``."""
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


# -- the keywords, derived from the model ---------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """One marker keyword: its valid values (``None``: a structure, see the description)."""

    name: str
    values: tuple[str, ...] | None
    default: Any
    description: str

    @property
    def shape(self) -> str:
        return "|".join(self.values) if self.values else "bool" if isinstance(self.default, bool) else ""


_VALUES: Mapping[str, tuple[str, ...]] = {"auth": tuple(AUTH_MODES), "server_cert": SERVER_CERT_KINDS}


def keywords() -> list[Keyword]:
    """The ``nats_secure`` keywords in order, with their values, defaults and descriptions."""
    out = []
    for name, info in NatsSpec.model_fields.items():
        values = _VALUES.get(name)
        if values is None and typing.get_origin(info.annotation) is Literal:
            values = tuple(str(arg) for arg in typing.get_args(info.annotation))
        out.append(Keyword(name, values, info.default, info.description or ""))
    return out


def marker_help() -> str:
    """The marker's line in ``pytest --markers``."""
    signature = ", ".join(f"{kw.name}={kw.default!r}" for kw in keywords())
    choices = "; ".join(f"{kw.name}: {kw.shape}" for kw in keywords() if kw.values)
    return (
        f"{MARKER}({signature}): run the test against a secured NATS server of this spec (fixtures "
        f"nats_secure, nats_client). {choices}."
    )


def valid_keywords() -> str:
    """``auth (none|userpass|...), tls (bool), ...``: what a usage error lists."""
    return ", ".join(f"{kw.name} ({kw.shape})" if kw.shape else kw.name for kw in keywords())


def build_spec(kwargs: Mapping[str, Any], *, where: str = f"@pytest.mark.{MARKER}") -> NatsSpec:
    """Validate keywords into a :class:`NatsSpec`; raise :class:`SpecError` on bad input."""
    try:
        return NatsSpec.model_validate(dict(kwargs))
    except ValidationError as exc:
        problems = [f"  {_where(err)}: {_explain(err)}" for err in exc.errors()]
        raise SpecError(
            f"{where}: invalid arguments\n" + "\n".join(problems) + f"\nvalid keywords: {valid_keywords()}"
        ) from None


def _where(err: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in err["loc"]) or "spec"


def _explain(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return f"unknown keyword (got {err['input']!r})"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and err["type"] not in ("missing",):
        message += f" (got {err['input']!r})"
    return message
