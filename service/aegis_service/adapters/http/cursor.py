"""The registry listing's page cursor: opaque to clients, it is the URL-safe base64 (unpadded) of the
last service name of the previous page. Only a cursor this API could have issued is accepted."""

from __future__ import annotations

import base64
import binascii
import re

from aegis_service.adapters.http.errors import InvalidField
from aegis_service.domain.models import SERVICE_NAME_PATTERN

#: What a cursor looks like (the base64 of a 3-64 character name is 4-86 characters long); the
#: OpenAPI document publishes it, FastAPI checks it before :func:`decode_cursor` runs.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{4,86}$"
_NAME = re.compile(SERVICE_NAME_PATTERN)
_BAD_CURSOR = "not a cursor this API issued: pass the nextCursor of the previous page unchanged"


def encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The service name ``cursor`` was made from; :class:`InvalidField` (422 naming ``cursor``) for
    anything :func:`encode_cursor` cannot have produced."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        raw = binascii.a2b_base64(padded.translate(str.maketrans("-_", "+/")), strict_mode=True)
        name = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidField("cursor", _BAD_CURSOR) from None
    if not _NAME.fullmatch(name) or encode_cursor(name) != cursor:
        raise InvalidField("cursor", _BAD_CURSOR)
    return name
