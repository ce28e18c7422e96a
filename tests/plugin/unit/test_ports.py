"""Which ports are leased (pytest_aegis.ports): outside the kernel's ephemeral range, or the range
``AEGIS_PORT_RANGE`` names; bad values are refused naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aegis import ConfigError
from pytest_aegis.ports import (
    FLOOR,
    IANA_EPHEMERAL,
    RANGE_ENV,
    ephemeral_range,
    lease_range,
    reserved_ports,
)


def test_leases_come_from_below_linux_ephemeral_range() -> None:
    assert lease_range({}, (32768, 60999)) == range(FLOOR, 32768)


def test_leases_come_from_above_an_ephemeral_range_that_starts_low() -> None:
    assert lease_range({}, (1024, 40000)) == range(40001, 65536)


def test_where_the_range_cannot_be_read_iana_dynamic_ports_are_assumed(tmp_path: Path) -> None:
    assert ephemeral_range(tmp_path / "missing") == IANA_EPHEMERAL
    assert lease_range({}, IANA_EPHEMERAL) == range(FLOOR, 49152)


def test_no_room_outside_the_ephemeral_range_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=f"set {RANGE_ENV}=LOW-HIGH"):
        lease_range({}, (1024, 65535))


def test_the_environment_sets_the_range() -> None:
    assert lease_range({RANGE_ENV: " 20000-20999 "}, (32768, 60999)) == range(20000, 21000)


@pytest.mark.parametrize("value", ["20000", "20000-", "x-y", "30000-20000", "80-9000", "20000-70000"])
def test_a_bad_range_names_the_variable_the_value_and_the_form(value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{RANGE_ENV}='{value}' \(environment\): expected LOW-HIGH"):
        lease_range({RANGE_ENV: value})


def test_reserved_ports_are_read_as_the_kernel_writes_them(tmp_path: Path) -> None:
    listed = tmp_path / "ip_local_reserved_ports"
    listed.write_text("8080,20000-20002\n")
    assert reserved_ports(listed) == {8080, 20000, 20001, 20002}
    listed.write_text("\n")
    assert reserved_ports(listed) == frozenset()
    assert reserved_ports(tmp_path / "missing") == frozenset()
