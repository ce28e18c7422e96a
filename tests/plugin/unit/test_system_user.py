"""The system account's user: made by the auth modes that can have one (nats-server allows it
only beside named users), named in the error of the modes that cannot, and never a spec's user."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aegis import SpecError
from pytest_aegis.natsd.auth import SYSTEM_ACCOUNT, SYSTEM_USER
from pytest_aegis.natsd.material import prepare
from pytest_aegis.natsd.spec import NatsSpec


@pytest.mark.parametrize("auth", ["userpass", "nkey"])
def test_modes_with_users_put_the_system_user_in_its_own_account(tmp_path: Path, auth: str) -> None:
    material = prepare(NatsSpec(auth=auth, tls=False), tmp_path, None)
    assert material.identity(SYSTEM_USER).connect_kwargs["user"] == SYSTEM_USER
    assert material.server_config["system_account"] == SYSTEM_ACCOUNT
    (entry,) = material.server_config["accounts"][SYSTEM_ACCOUNT]["users"]
    password = material.identity(SYSTEM_USER).connect_kwargs["password"]
    assert entry == {"user": SYSTEM_USER, "password": password}


def test_operator_mode_issues_the_system_user_in_its_system_account(tmp_path: Path) -> None:
    material = prepare(NatsSpec(auth="jwt", tls=False), tmp_path, None)
    creds = Path(material.identity(SYSTEM_USER).connect_kwargs["user_credentials"])
    assert creds.name == f"{SYSTEM_USER}.creds" and "BEGIN NATS USER JWT" in creds.read_text()


@pytest.mark.parametrize("auth", ["none", "token"])
def test_modes_without_a_system_user_say_which_modes_have_one(tmp_path: Path, auth: str) -> None:
    material = prepare(NatsSpec(auth=auth, tls=False), tmp_path, None)
    assert "accounts" not in material.server_config
    with pytest.raises(KeyError, match="'userpass', 'nkey' or 'jwt'"):
        material.identity(SYSTEM_USER)


def test_a_spec_user_cannot_take_the_system_users_name() -> None:
    with pytest.raises((SpecError, ValueError), match=SYSTEM_USER):
        NatsSpec(auth="userpass", users={SYSTEM_USER: {}})
