"""The security matrix as the session ends: the terminal section, the JSON file, the JUnit
properties, and the gate (``--aegis-require``) that fails a session which never proved a case.

The gate's cases (:data:`REQUIRED_CASES`) are coarser than a row's: ``auth`` and ``tls`` are a
connection rejected for that reason (a test client's, or the service under test's: its refusal
was the server's), ``mtls`` a client certificate (or its absence) refused by an
mTLS server, ``permissions`` a publish or subscribe denied, ``app-refusal`` the service under test
refused for ``auth`` or ``tls``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from pytest_aegis.config import AegisConfig, RequiredCase
from pytest_aegis.matrix.record import CASES, Recorder, SpecRow

#: Each gate case: the row cases that prove it, and the assertion that would.
REQUIRED_CASES: Mapping[str, tuple[tuple[str, ...], str]] = {
    "auth": (
        ("rejected:auth", "app-refused:auth"),
        "a passing assert_connection_rejected(server, reason='auth', password='wrong') "
        "(or another bad credential), or assert_app_refuses_to_start(..., reason='auth')",
    ),
    "tls": (
        ("rejected:tls", "app-refused:tls"),
        "a passing assert_connection_rejected(server, reason='tls', ...): e.g. tls=None (the system trust "
        "store) against a TLS server, or any client against a server_cert='untrusted' server; or "
        "assert_app_refuses_to_start(..., reason='tls')",
    ),
    "mtls": (
        ("rejected:mtls",),
        "a passing assert_connection_rejected(server, reason='tls', tls=aegis_ca.client_ssl_context()) on a "
        "nats_secure(mtls=True) server (no client certificate), or with aegis_ca.untrusted_client_cert",
    ),
    "permissions": (
        ("denied:publish", "denied:subscribe"),
        "a passing assert_permission_denied(nc, subject, 'publish' or 'subscribe') on a server "
        "with permissions",
    ),
    "app-refusal": (
        ("app-refused:auth", "app-refused:tls"),
        "a passing assert_app_refuses_to_start(aegis_app_factory, reason='auth' or 'tls', ...)",
    ),
}
assert set(REQUIRED_CASES) == set(typing.get_args(RequiredCase)), "the gate's cases are the setting's values"
_SHORT = {
    "rejected:auth": "rejected auth",
    "rejected:tls": "rejected tls",
    "rejected:mtls": "rejected mtls",
    "denied:publish": "denied publish",
    "denied:subscribe": "denied subscribe",
    "app-refused:auth": "app refused auth",
    "app-refused:tls": "app refused tls",
    "app-refused:permissions": "app refused permissions",
}


def proved_cases(rows: Iterable[SpecRow]) -> list[str]:
    """The gate cases some row proved."""
    seen = {case for row in rows for case, count in row.proved.items() if count}
    return [name for name, (cases, _) in REQUIRED_CASES.items() if seen.intersection(cases)]


def missing(required: Iterable[str], rows: Iterable[SpecRow]) -> list[str]:
    proved = set(proved_cases(rows))
    return [case for case in required if case not in proved]


def gate_message(missing_cases: list[str]) -> str:
    lines = ["aegis: --aegis-require: never proved by a passing test:"]
    lines += [f"  {case}: needs {REQUIRED_CASES[case][1]}" for case in missing_cases]
    return "\n".join(lines)


def table(rows: Iterable[SpecRow]) -> list[str]:
    """The terminal section's lines: one per spec."""
    header = ("spec", "auth", "tls", "mtls", "server cert", "topology", "tests connected", "proved")
    ordered = sorted(rows, key=lambda r: (r.topology, r.label, r.key))
    labels = [row.label for row in ordered]
    body = [
        (
            # Specs that differ only in their users or permissions share a label: number them.
            f"{row.label} #{labels[: index + 1].count(row.label)}"
            if labels.count(row.label) > 1
            else row.label,
            row.auth,
            "yes" if row.tls else "no",
            "yes" if row.mtls else "no",
            row.server_cert,
            row.topology,
            str(row.connected_tests),
            ", ".join(f"{_SHORT[c]} ({row.proved[c]})" for c in CASES if row.proved[c]) or "-",
        )
        for index, row in enumerate(ordered)
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header) - 1)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return "  ".join([*padded, cells[-1]])

    return [line(header), *(line(cells) for cells in body)]


def document(recorder: Recorder, required: Iterable[str]) -> dict[str, Any]:
    """The JSON report: every row, the gate cases proved, and what the gate required and missed."""
    rows = list(recorder.rows.values())
    required = list(required)
    return {
        "specs": [row.to_json() for row in rows],
        "proved": proved_cases(rows),
        "required": required,
        "missing": missing(required, rows),
    }


def write_json(path: Path, recorder: Recorder, required: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(recorder, required), indent=2) + "\n")


def junit_properties(recorder: Recorder, required: Iterable[str]) -> list[tuple[str, str]]:
    """The same facts as ``(name, value)`` testsuite properties for a JUnit XML report."""
    doc = document(recorder, required)
    props = [
        ("aegis.security.proved", ",".join(doc["proved"])),
        ("aegis.security.required", ",".join(doc["required"])),
        ("aegis.security.missing", ",".join(doc["missing"])),
    ]
    for index, spec in enumerate(doc["specs"], start=1):
        prefix = f"aegis.security.spec.{index}"
        props += [
            (f"{prefix}.label", spec["label"]),
            (f"{prefix}.auth", spec["auth"]),
            (f"{prefix}.tls", str(spec["tls"]).lower()),
            (f"{prefix}.mtls", str(spec["mtls"]).lower()),
            (f"{prefix}.server_cert", spec["server_cert"]),
            (f"{prefix}.topology", spec["topology"]),
            (f"{prefix}.connected_tests", str(spec["connected_tests"])),
            (f"{prefix}.proved", ",".join(f"{case}={count}" for case, count in spec["proved"].items())),
        ]
    return props


def finish(config: pytest.Config, recorder: Recorder, settings: AegisConfig) -> list[str]:
    """At the end of the session (its owner): write the JSON report if asked, add the matrix to a
    JUnit XML report if there is one, and return the required cases no passing test proved."""
    if settings.security_report is not None:  # relative to the working directory, as --junitxml
        write_json(settings.security_report, recorder, settings.require)
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        for name, value in junit_properties(recorder, settings.require):
            xml.add_global_property(name, value)
    return missing(settings.require, recorder.rows.values())
