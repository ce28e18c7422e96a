"""Single ``AEGIS_*`` values: parsing and checks, as annotated types for the fields of
:class:`~aegis_service.settings.Settings`. Each check raises ``ValueError`` with the message that follows
the variable's name in the one-line configuration error."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import nkeys
from pydantic import BeforeValidator, SecretStr

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_REGISTRATION_TTL = 1.0  # nats-server's per-message TTL (Nats-TTL) has a granularity of one second

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_TOKEN_RE = re.compile(r"^[^\s.*>]+$")
# Semantic Versioning 2.0 (semver.org), which the NATS services protocol requires of a version.
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_URL_SCHEMES = ("nats", "tls")


def show(value: object) -> str:
    """``value`` quoted for an error message, cut to 60 characters."""
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return repr(text)


def _parse_float(value: object, what: str = "a number of seconds") -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got {show(value)}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError(f"expected {what}, got {show(value)}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {show(value)}")
    return number


def _parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {show(value)}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {show(value)}") from None


def parse_http_bind(value: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:8080``) into host and port; port 0 means "any free port"."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected host:port (IPv6 as [addr]:port), got {show(value)}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"expected host:port (IPv6 as [addr]:port), got {show(value)}")
    if not host:
        raise ValueError(f"missing host in {show(value)}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be an integer 0-65535, got {show(port_text)}")
    return host, int(port_text)


# -- checks -------------------------------------------------------------------------------------------


def _nats_urls(value: object) -> str:
    urls = [part.strip() for part in str(value).split(",")]
    for url in urls:
        if not url:
            raise ValueError(f"empty server URL in {show(value)}")
        parts = urlsplit(url)
        if parts.scheme not in _URL_SCHEMES:
            raise ValueError(f"scheme must be nats:// or tls://, got {show(url)}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise ValueError(f"invalid port in {show(url)}") from None
        if not host:
            raise ValueError(f"missing host in {show(url)}")
        if port == 0:
            raise ValueError(f"port must be 1-65535 in {show(url)}")
        if parts.username or parts.password:
            raise ValueError(
                "credentials in the URL are not accepted; use AEGIS_NATS_USER/AEGIS_NATS_PASSWORD "
                "or AEGIS_NATS_TOKEN"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"unexpected path or query in {show(url)}")
    return ",".join(urls)


def _plain_text(value: object) -> str:
    text = str(value)
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise ValueError("must not contain whitespace")
    return text


def _readable_file(value: object) -> Path:
    path = Path(str(value)).expanduser()
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def _nkey_seed_file(value: object) -> Path:
    path = _readable_file(value)
    seed = bytearray(path.read_bytes().strip())
    if not seed.startswith(b"SU"):
        raise ValueError(f"{path} does not hold an nkey user seed (expected a line starting with 'SU')")
    try:
        nkeys.from_seed(seed).wipe()
    except Exception:
        raise ValueError(f"{path} does not hold a valid nkey user seed") from None
    return path


def _creds_file(value: object) -> Path:
    path = _readable_file(value)
    text = path.read_text(encoding="utf-8", errors="replace")
    if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
        raise ValueError(f"{path} is not a NATS .creds file (needs a user JWT and an nkey seed block)")
    return path


def _token(value: object) -> str:
    text = str(value)
    if not _TOKEN_RE.match(text):
        raise ValueError(f"must be 1-64 characters from [A-Za-z0-9_-], got {show(text)}")
    return text


def _version(value: object) -> str:
    text = str(value)
    if len(text) > 64 or not _SEMVER_RE.match(text):
        raise ValueError(
            "must be a semantic version of at most 64 characters (MAJOR.MINOR.PATCH, e.g. 1.4.2 or "
            f"2.0.0-rc.1; the NATS services protocol requires one), got {show(text)}"
        )
    return text


def _subject(value: object) -> str:
    text = str(value)
    if len(text) > 200 or not all(_SUBJECT_TOKEN_RE.match(token) for token in text.split(".")):
        raise ValueError(
            f"must be a NATS subject of dot-separated tokens without spaces or wildcards, got {show(text)}"
        )
    return text


def _ttl(value: object) -> float:
    number = _parse_float(value)
    if number < MIN_REGISTRATION_TTL:
        raise ValueError(f"must be at least {MIN_REGISTRATION_TTL:g} second(s), got {show(value)}")
    return number


def _positive_seconds(value: object) -> float:
    number = _parse_float(value)
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {show(value)}")
    return number


def _positive_int(value: object) -> int:
    number = _parse_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, got {show(value)}")
    return number


def _replicas(value: object) -> int:
    number = _parse_int(value)
    if not 1 <= number <= 5:
        raise ValueError(f"must be 1 to 5 (JetStream's replica limit), got {show(value)}")
    return number


def _database_url(value: object) -> str:
    text = str(value).strip()
    if urlsplit(text).scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return text


def _http_bind(value: object) -> str:
    parse_http_bind(str(value))
    return str(value).strip()


def _log_level(value: object) -> str:
    text = str(value).strip().upper()
    if text == "WARN":
        text = "WARNING"
    if text not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {show(value)}")
    return text


# -- the types ------------------------------------------------------------------------------------------

NatsUrls = Annotated[str, BeforeValidator(_nats_urls)]
PlainText = Annotated[str, BeforeValidator(_plain_text)]
ReadableFile = Annotated[Path, BeforeValidator(_readable_file)]
NkeySeedFile = Annotated[Path, BeforeValidator(_nkey_seed_file)]
CredsFile = Annotated[Path, BeforeValidator(_creds_file)]
Token = Annotated[str, BeforeValidator(_token)]
Version = Annotated[str, BeforeValidator(_version)]
Subject = Annotated[str, BeforeValidator(_subject)]
RegistrationTtl = Annotated[float, BeforeValidator(_ttl)]
Seconds = Annotated[float, BeforeValidator(_positive_seconds)]
PositiveInt = Annotated[int, BeforeValidator(_positive_int)]
Replicas = Annotated[int, BeforeValidator(_replicas)]
DatabaseUrl = Annotated[SecretStr, BeforeValidator(_database_url)]
HttpBind = Annotated[str, BeforeValidator(_http_bind)]
LogLevel = Annotated[str, BeforeValidator(_log_level)]
