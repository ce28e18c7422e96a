"""NATS credentials for negative tests: nkey users, JWTs, an operator issuing user ``.creds``
(expired, foreign, forged).  The public face of :mod:`pytest_aegis.natsd.jwt` (encoding) and
:mod:`pytest_aegis.natsd.operator` (the operator, accounts and users)::

    from pytest_aegis import nats_auth
    stranger = nats_auth.new_nkey_user()
"""

from __future__ import annotations

from pytest_aegis.natsd.jwt import JWT_HEADER, NKeyUser, decode_jwt, encode_jwt, new_nkey_user
from pytest_aegis.natsd.operator import OperatorTrust, PermissionsSpec, UserCreds

__all__ = [
    "JWT_HEADER",
    "NKeyUser",
    "OperatorTrust",
    "PermissionsSpec",
    "UserCreds",
    "decode_jwt",
    "encode_jwt",
    "new_nkey_user",
]
