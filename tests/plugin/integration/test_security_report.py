"""The security matrix report and the ``--aegis-require`` gate, seen from a user's session (real
inner sessions with real servers): what a session proved is listed per spec, written as JSON and
into a JUnit report, merged from xdist workers, and a required case nobody proved fails the run;
the reports of CI shards merge into one gate (``python -m pytest_aegis gate``)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from support import run_inner

POSITIVE_ONLY = """
    import pytest

    @pytest.mark.asyncio
    @pytest.mark.nats_secure
    async def test_publishes(nats_client):
        await nats_client.publish("orders.created", b"{}")
"""
NEGATIVE = """
    import pytest
    from pytest_aegis import assert_connection_rejected

    @pytest.mark.asyncio
    @pytest.mark.nats_secure
    async def test_wrong_password(nats_secure):
        await assert_connection_rejected(nats_secure, reason="auth", password="wrong")

    @pytest.mark.asyncio
    @pytest.mark.nats_secure
    async def test_untrusting_client(nats_secure):
        await assert_connection_rejected(nats_secure, reason="tls", tls=None)
"""


def _matrix(path):
    return json.loads(path.read_text())


def test_only_positive_tests_fail_a_gate_on_auth_and_tls_naming_both(inner):
    inner.makepyfile(test_inner=POSITIVE_ONLY)
    report = inner.path / "security.json"
    result = run_inner(inner, "--aegis-require=auth,tls", f"--aegis-security-report={report}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*aegis: security matrix*",
            "*tls+userpass+js*userpass*yes*no*valid*single*1*-*",
            "*aegis: --aegis-require: never proved by a passing test:*",
            "*auth: needs a passing assert_connection_rejected(server, reason='auth'*",
            "*tls: needs a passing assert_connection_rejected(server, reason='tls'*",
        ]
    )
    doc = _matrix(report)
    assert doc["missing"] == ["auth", "tls"] and doc["proved"] == []
    assert [row["connected_tests"] for row in doc["specs"]] == [1]


def test_one_passing_test_of_each_passes_the_gate_and_the_reports_agree(inner):
    inner.makepyfile(test_inner=POSITIVE_ONLY + NEGATIVE)
    report, junit = inner.path / "security.json", inner.path / "junit.xml"
    result = run_inner(
        inner, "--aegis-require=auth,tls", f"--aegis-security-report={report}", f"--junitxml={junit}"
    )
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*tls+userpass+js*single*1*rejected auth (1), rejected tls (1)*"])
    assert "never proved" not in result.stdout.str()
    doc = _matrix(report)
    assert doc["proved"] == ["auth", "tls"] and doc["missing"] == []
    (row,) = doc["specs"]
    assert row["proved"] == {"rejected:auth": 1, "rejected:tls": 1}
    assert row["connected_tests"] == 1  # the two negative tests never connected
    properties = {prop.get("name"): prop.get("value") for prop in ET.parse(junit).getroot().iter("property")}
    assert properties["aegis.security.proved"] == "auth,tls"
    assert properties["aegis.security.missing"] == ""
    assert properties["aegis.security.spec.1.label"] == row["label"]
    assert properties["aegis.security.spec.1.connected_tests"] == "1"
    assert properties["aegis.security.spec.1.proved"] == "rejected:auth=1,rejected:tls=1"


def test_a_negative_case_in_a_failing_test_proves_nothing(inner):
    inner.makepyfile(
        test_inner=NEGATIVE
        + """
    @pytest.mark.asyncio
    @pytest.mark.nats_secure(mtls=True)
    async def test_mtls_then_fails(nats_secure):
        await assert_connection_rejected(nats_secure, reason="tls", tls=None)
        assert False, "the test fails after its assertion passed"
    """
    )
    report = inner.path / "security.json"
    result = run_inner(inner, f"--aegis-security-report={report}", "--aegis-require=mtls")
    result.assert_outcomes(passed=2, failed=1)
    doc = _matrix(report)
    mtls_row = next(row for row in doc["specs"] if row["mtls"])
    assert mtls_row["proved"] == {}
    assert doc["missing"] == ["mtls"]


def test_under_xdist_the_controller_merges_the_workers_matrices(inner):
    inner.makepyfile(test_inner=POSITIVE_ONLY + NEGATIVE)
    report = inner.path / "security.json"
    result = run_inner(inner, "-n", "2", "--aegis-require=auth,tls", f"--aegis-security-report={report}")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    (row,) = _matrix(report)["specs"]
    assert row["proved"] == {"rejected:auth": 1, "rejected:tls": 1}
    assert row["connected_tests"] == 1


def test_an_unknown_required_case_is_a_usage_error_listing_the_valid_ones(inner):
    inner.makepyfile(test_inner=POSITIVE_ONLY)
    result = run_inner(inner, "--aegis-require=auth,kerberos")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--aegis-require*unknown 'kerberos'*valid values*auth, tls, mtls, permissions, app-refusal*"]
    )


def _gate(*args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest_aegis", "gate", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_shards_reports_merge_into_one_gate_that_passes_only_with_every_case(inner):
    inner.makepyfile(test_inner=POSITIVE_ONLY + NEGATIVE)
    shards = {"auth": "wrong_password", "tls": "untrusting_client or publishes"}
    reports = []
    for case, selection in shards.items():
        reports.append(inner.path / f"report-{case}.json")
        result = run_inner(inner, "-k", selection, f"--aegis-security-report={reports[-1]}")
        assert result.ret == pytest.ExitCode.OK
        assert _matrix(reports[-1])["proved"] == [case], "each shard proves one case alone"
    alone = _gate(reports[0], "--require=auth,tls")
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert "aegis: --aegis-require: never proved by a passing test:" in alone.stdout
    assert "  tls: needs a passing assert_connection_rejected(server, reason='tls'" in alone.stdout
    merged = inner.path / "merged.json"
    both = _gate(*reports, "--require=auth,tls", f"--out={merged}")
    assert both.returncode == 0, both.stdout + both.stderr
    assert "proved across 2 report(s): auth, tls" in both.stdout
    doc = _matrix(merged)
    assert doc["proved"] == ["auth", "tls"] and doc["missing"] == []
    (row,) = doc["specs"]  # one spec in both shards: one row, its counts added up
    assert row["proved"] == {"rejected:auth": 1, "rejected:tls": 1} and row["connected_tests"] == 1


APP_REFUSALS = """
    import pytest
    from pytest_aegis import assert_app_refuses_to_start

    @pytest.mark.nats_secure(auth="userpass")
    def test_wrong_password(aegis_app_factory):
        assert_app_refuses_to_start(aegis_app_factory, reason="auth", env={"AEGIS_NATS_PASSWORD": "wrong"})

    @pytest.mark.nats_cluster(size=2, server_cert="untrusted")
    def test_untrusted_cluster(aegis_app_factory):
        assert_app_refuses_to_start(aegis_app_factory, reason="tls")
"""


def test_an_app_refused_for_auth_or_tls_proves_the_gates_case_on_its_servers_row(inner):
    """The service's refusal was the server's: it proves ``auth`` and ``tls`` as a test client's
    would, and a refusal by a cluster is counted on the cluster's row."""
    inner.makepyfile(test_inner=APP_REFUSALS)
    report = inner.path / "security.json"
    result = run_inner(inner, "--aegis-require=auth,tls,app-refusal", f"--aegis-security-report={report}")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    doc = _matrix(report)
    assert doc["proved"] == ["auth", "tls", "app-refusal"] and doc["missing"] == []
    rows = {row["topology"]: row["proved"] for row in doc["specs"]}
    assert rows == {"single": {"app-refused:auth": 1}, "cluster": {"app-refused:tls": 1}}
