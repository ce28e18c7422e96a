"""The security reports of several sessions (CI shards, each run with
``--aegis-security-report``) merged into one matrix, and the gate applied to it:
``python -m pytest_aegis gate report-*.json --require=auth,tls``.

A case proved in any shard counts, as it would have in one session that ran every shard's tests
(rows of the same spec add up, as xdist workers' do)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pytest_aegis.errors import ConfigError
from pytest_aegis.matrix.record import Recorder, SpecRow
from pytest_aegis.matrix.report import gate_message, missing, proved_cases, table

#: How a shard writes the report this reads.
HOW = "write one per shard with pytest --aegis-security-report=PATH"


def read_report(path: Path) -> list[dict[str, Any]]:
    """The spec rows of one report; :class:`ConfigError` naming the file and what is wrong."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        hint = " (a shell pattern that matched no file is passed as it is)" if "*" in path.name else ""
        raise ConfigError(f"gate: no report {path}{hint}; {HOW}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"gate: {path} is not a JSON security report ({exc}); {HOW}") from None
    specs = document.get("specs") if isinstance(document, dict) else None
    if not isinstance(specs, list):
        raise ConfigError(f'gate: {path} has no "specs" list: not an aegis security report; {HOW}')
    for index, row in enumerate(specs):
        try:
            SpecRow.from_json(row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"gate: {path}: specs[{index}] is not a spec row ({exc!r}); {HOW}") from None
    return specs


def merge(paths: Sequence[Path]) -> Recorder:
    """One matrix from every report in ``paths`` (each read and checked before any is merged)."""
    if not paths:
        raise ConfigError(f"gate: no report given; {HOW}")
    reports = [read_report(path) for path in paths]
    recorder = Recorder()
    for rows in reports:
        recorder.merge_json(rows)
    return recorder


def apply(recorder: Recorder, required: Iterable[str], sources: int) -> tuple[bool, list[str]]:
    """Whether the merged matrix passes the gate, and the lines to print: the table, what was
    proved, and the gate's message (the session's own) when a case was proved in no shard."""
    rows = list(recorder.rows.values())
    lines = [*table(rows), f"proved across {sources} report(s): {', '.join(proved_cases(rows)) or 'nothing'}"]
    absent = missing(required, rows)
    if absent:
        return False, [*lines, gate_message(absent)]
    return True, [*lines, f"aegis gate: passed ({', '.join(required) or 'nothing required'})"]
