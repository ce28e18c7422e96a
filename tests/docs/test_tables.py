"""The docs' generated tables (``docs/tables.py``) are current in the Markdown files, and a table
comment that names what does not exist is an error naming the file, not an empty table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from docs.tables import DOCUMENTS, ROOT, TableError, render


def test_every_table_in_the_docs_is_current() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "tables.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert sum(path.read_text().count("<!-- aegis-table:") for path in DOCUMENTS) >= 6


def test_a_table_is_filled_between_its_comments_with_its_notes() -> None:
    page = (
        "<!-- aegis-table: options prefix=docker_\ndocker_network: see below\n-->\n"
        "old rows\n<!-- /aegis-table -->\n"
    )
    out = render(page, "page.md")
    assert "old rows" not in out and out.endswith("<!-- /aegis-table -->\n")
    (row,) = [line for line in out.splitlines() if line.startswith("| `--aegis-docker-network`")]
    assert row.endswith("; see below |")
    assert not re.search(r"\| `--aegis-(?!docker)", out), "only the docker_ settings"


@pytest.mark.parametrize(
    ("page", "error"),
    [
        ("<!-- aegis-table: colours -->\n<!-- /aegis-table -->", "page.md: unknown table 'colours'"),
        (
            "<!-- aegis-table: options prefix=docker_\nnats_bin: x\n-->\n<!-- /aegis-table -->",
            "page.md: options: notes for unknown settings ['nats_bin']",
        ),
        (
            "<!-- aegis-table: options prefix=nope_ -->\n<!-- /aegis-table -->",
            "no setting starts with 'nope_'",
        ),
    ],
)
def test_a_table_comment_naming_what_does_not_exist_is_an_error(page: str, error: str) -> None:
    with pytest.raises(TableError, match=re.escape(error)):
        render(page, "page.md")
