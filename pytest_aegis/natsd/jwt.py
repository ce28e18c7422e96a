"""NKeys and JWTs for NATS ``nkey`` and ``jwt`` (operator / decentralized) auth: encoding only.

Pure logic: no pytest, no processes, no ``nsc``/``nk``.  Keys come from the ``nkeys`` library;
JWTs are encoded here the way ``nats-io/jwt`` v2 encodes them:

* header ``{"typ":"JWT","alg":"ed25519-nkey"}``, every part base64url without
  padding, signature = ed25519 over ``"<header>.<claims>"`` by the issuer's nkey;
* registered claims in the order ``aud, exp, jti, iat, iss, name, nbf, sub``
  followed by the ``nats`` object (``type`` and ``"version": 2``);
* ``jti`` = base32 (no padding) of **SHA-512/256** over the compact JSON of the
  registered claims *without* ``jti`` (the ``nats`` object is not hashed).  That
  is what ``ClaimsData.hash()`` in nats-io/jwt v2 does; it is checked in the unit
  tests against a JWT that nats-io's own tooling produced.

The operator, its accounts and users (claims, ``.creds`` files) are in
:mod:`pytest_aegis.natsd.operator`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nkeys

__all__ = ["JWT_HEADER", "KeyPair", "NKeyUser", "decode_jwt", "encode_jwt", "new_keypair", "new_nkey_user"]

JWT_HEADER: Mapping[str, str] = {"typ": "JWT", "alg": "ed25519-nkey"}
"""The header of every NATS v2 JWT."""

JWT_VERSION = 2
_REGISTERED_CLAIMS = ("aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub")
# Go's encoding/json escapes these inside strings; we do the same so our JSON,
# and thus the jti hash, is byte-for-byte what nats-io/jwt would produce.
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPair:
    """An nkey as text: ``public_key`` (``O``/``A``/``U``...) and its ``seed``."""

    public_key: str
    seed: str = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        keypair = nkeys.from_seed(self.seed.encode())
        try:
            return bytes(keypair.sign(data))
        finally:
            keypair.wipe()


def new_keypair(prefix: int) -> KeyPair:
    seed = nkeys.encode_seed(secrets.token_bytes(32), prefix)
    keypair = nkeys.from_seed(seed)
    try:
        return KeyPair(public_key=bytes(keypair.public_key).decode(), seed=bytes(seed).decode())
    finally:
        keypair.wipe()


@dataclass(frozen=True)
class NKeyUser:
    """A user nkey for plain nkey auth (no JWT).

    The server config lists ``public_key`` (``authorization { users: [ {nkey:
    "U..."} ] }``); the client signs the server's nonce with ``seed``, e.g.
    ``nats.connect(nkeys_seed_str=user.seed)``.
    """

    public_key: str
    seed: str = field(repr=False)


def new_nkey_user() -> NKeyUser:
    """Generate a fresh user nkey: ``public_key`` starts with ``U``, ``seed`` with ``SU``."""
    keypair = new_keypair(nkeys.PREFIX_BYTE_USER)
    return NKeyUser(public_key=keypair.public_key, seed=keypair.seed)


# --------------------------------------------------------------------------- JWT encoding


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _go_json(value: Mapping[str, Any]) -> bytes:
    """Compact JSON, keys in insertion order, strings escaped like Go's encoding/json."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode()


def _claims_id(registered: Mapping[str, Any]) -> str:
    """The ``jti`` nats-io/jwt v2 derives from the registered claims (``jti`` excluded)."""
    hashed = {key: registered[key] for key in _REGISTERED_CLAIMS if key != "jti" and registered.get(key)}
    digest = hashlib.new("sha512_256", _go_json(hashed)).digest()
    return base64.b32encode(digest).decode().rstrip("=")


def _ordered_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """Registered claims in nats-io/jwt order (empty ones omitted), then everything else."""
    ordered = {key: claims[key] for key in _REGISTERED_CLAIMS if claims.get(key)}
    ordered.update((key, value) for key, value in claims.items() if key not in _REGISTERED_CLAIMS)
    return ordered


def encode_jwt(claims: Mapping[str, Any], issuer_seed: str, *, issued_at: int | None = None) -> str:
    """Sign ``claims`` as a NATS v2 JWT with the nkey ``issuer_seed``.

    ``claims`` needs ``sub`` and a ``nats`` object; it may carry ``name``,
    ``aud``, ``exp`` and ``nbf`` (unix seconds).  ``iss`` (the issuer's public
    key), ``iat`` (``issued_at``, default now) and ``jti`` are set here and
    override any value passed in.  The same claims, issuer and ``issued_at``
    always give the same ``jti``.
    """
    if not claims.get("sub"):
        raise ValueError("JWT claims need a 'sub' (the subject's public key)")
    if not isinstance(claims.get("nats"), Mapping):
        raise ValueError("JWT claims need a 'nats' object with 'type' and 'version'")
    issuer = nkeys.from_seed(issuer_seed.encode())
    try:
        issuer_public_key = bytes(issuer.public_key).decode()
    finally:
        issuer.wipe()
    body = {key: value for key, value in claims.items() if key != "jti"}
    body["iss"] = issuer_public_key
    body["iat"] = int(time.time()) if issued_at is None else issued_at
    body["jti"] = _claims_id(body)
    signing_input = f"{_b64url(_go_json(JWT_HEADER))}.{_b64url(_go_json(_ordered_claims(body)))}"
    signature = KeyPair(public_key=issuer_public_key, seed=issuer_seed).sign(signing_input.encode())
    return f"{signing_input}.{_b64url(signature)}"


def decode_jwt(token: str) -> dict[str, Any]:
    """Return the claims of a NATS JWT **without verifying** its signature.

    For inspecting tokens in tests and failure messages; trust decisions are
    the server's.  Raises :class:`ValueError` if ``token`` is not three
    base64url parts with a JSON object in the middle.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError(f"a JWT has 3 dot-separated parts, got {len(parts)}")
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except ValueError as error:
        raise ValueError(f"JWT claims are not base64url JSON: {error}") from error
    if not isinstance(claims, dict):
        raise ValueError("JWT claims are not a JSON object")
    return claims
