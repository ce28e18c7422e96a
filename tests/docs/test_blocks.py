"""The collector that makes the docs' Python blocks tests (the repository's ``conftest.py``): each
block runs, a block that fails fails its test at the Markdown line, the hidden setup and the
"body of" header apply, and a fragment without a header is an error, not a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

README = """# A project

<!-- docs-test setup
import math
-->

```python
def test_setup_applies():
    assert math.pi > 3
```

```python
total = 1 + 1
assert total == 3, "the docs say so"
```

<!-- docs-test body of
def test_the_fragment(tmp_path):
-->
```python
assert tmp_path.is_dir()
```

- a list item:

  ```python
  assert True
  ```

```python
await something()
```
"""


def test_each_block_runs_and_a_failing_block_fails_at_its_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makefile(".md", README=README)
    (pytester.path / "docs").mkdir()
    result = pytester.runpytest(
        "README.md", "-p", "no:randomly", "-p", "no:cacheprovider", "--continue-on-collection-errors"
    )
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*SyntaxError: 'await' outside async function",  # a fragment needs a "body of" header
            "*README.md, line 13:14: AssertionError",  # the failing line, as the Markdown file numbers it
            "FAILED README.md::line 13::test_runs - AssertionError: the docs say so",
            "ERROR README.md::line 31 *",
        ],
        consecutive=False,
    )
