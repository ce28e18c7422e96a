"""``python -m pytest_aegis gate``'s bad input: each error names the report or option, what was
wrong and how to fix it, exit 2, before anything is merged (the merge itself, on real shards'
reports: ``tests/plugin/integration/test_security_report.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aegis.__main__ import main
from pytest_aegis.matrix.record import SpecRow

ROW = SpecRow("single:{}", "tls+userpass+js", "userpass", True, False, "valid").to_json()


def gate(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    code = main(["gate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def report(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("not json {", "is not a JSON security report"),
        ([1, 2], 'has no "specs" list: not an aegis security report'),
        ({"specs": [{"label": "x"}]}, "specs[0] is not a spec row"),
    ],
)
def test_a_bad_report_is_named_with_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, expected: str
) -> None:
    path = tmp_path / "report.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    good = report(tmp_path / "good.json", {"specs": [ROW]})
    code, out = gate(capsys, good, path, "--require=auth")
    assert code == 2
    assert f"gate: {path}" in out and expected in out and "--aegis-security-report=PATH" in out


def test_a_pattern_that_matched_nothing_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = gate(capsys, tmp_path / "report-*.json", "--require=auth")
    assert code == 2 and "no report" in out and "matched no file" in out


def test_the_required_cases_are_checked_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = report(tmp_path / "good.json", {"specs": [ROW]})
    monkeypatch.delenv("AEGIS_REQUIRE", raising=False)
    code, out = gate(capsys, good)
    assert code == 2 and "--require=" in out and "auth, tls, mtls, permissions, app-refusal" in out
    code, out = gate(capsys, good, "--require=auth,tsl")
    assert code == 2 and "unknown 'tsl'" in out and "(set by gate --require)" in out
    monkeypatch.setenv("AEGIS_REQUIRE", "mtls")
    code, out = gate(capsys, good)
    assert code == 1 and "mtls: needs" in out, "env AEGIS_REQUIRE is the default"
