"""The docs' Python blocks are tests: every ```python block of ``README.md`` and ``docs/*.md`` is
executed as a module of its own, and the tests it defines run as pytest runs a user's file, with
their markers and the plugin's fixtures.

Refused: Sybil and pytest-markdown-docs, both well kept; they run a block as a script (fixtures
injected by name), while the docs' blocks are tests whose fixtures depend on their markers
(``@pytest.mark.nats_secure(...)``, ``nats_cluster``), so only a real pytest module runs them
faithfully.

Two HTML comments, invisible on the repository page and in the built docs, say what a block needs:

``<!-- docs-test setup`` ... ``-->``
    Python run before every later block of the file (the imports and helpers the prose implies).
``<!-- docs-test body of`` header ``-->``, right before a block
    The block is the body of the function the header starts (a fragment with ``await``).  A block
    that defines no test and has no header is the body of a test of its own.
"""

from __future__ import annotations

import ast
import linecache
import re
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: The Markdown files whose blocks are tests.
DOCUMENTS = [HERE / "README.md", *sorted((HERE / "docs").glob("*.md"))]
_FENCE = re.compile(r"^( *)```python\s*$")
_COMMENT = re.compile(r"<!-- docs-test (setup|body of)\n(.*?)-->", re.S)


@dataclass(frozen=True)
class Block:
    """One ```python block: its first code line (1-based), its code, the header it is the body of."""

    line: int
    code: str
    header: str | None

    def source(self) -> str:
        """The block as module source whose line numbers are the Markdown file's."""
        if self.header is None:
            return "\n" * (self.line - 1) + self.code
        header = self.header.rstrip("\n") + "\n"
        pad = max(self.line - 1 - header.count("\n"), 0)
        return "\n" * pad + header + textwrap.indent(self.code, "    ")


def defines_tests(code: str) -> bool:
    """Whether ``code`` defines a test function at its top level."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # a fragment with `await`: it needs a "body of" header
        return False
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in tree.body
    )


def blocks(path: Path) -> Iterator[tuple[Block, str]]:
    """Each block of ``path`` with the setup code written before it."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    setup: list[str] = []
    header: str | None = None
    position = 0
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        start = index + 1
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
        offset = sum(map(len, lines[:index]))
        for comment in _COMMENT.finditer(text, position, offset):
            if comment.group(1) == "setup":
                setup.append(comment.group(2))
            else:
                header = comment.group(2)
        code = textwrap.dedent("".join(lines[start:end])) if fence.group(1) else "".join(lines[start:end])
        if header is None and not defines_tests(code):  # a block of statements runs as a test too
            header = "def test_runs():\n"
        yield Block(start + 1, code, header), "".join(setup)
        header, position, index = None, sum(map(len, lines[: end + 1])), end + 1


class BlockModule(pytest.Module):
    """One block as a module: the file's setup so far, then the block."""

    block: Block
    prelude: str

    def _getobj(self) -> types.ModuleType:
        module = types.ModuleType(f"docs_block_{self.path.stem}_{self.block.line}")
        module.__file__ = str(self.path)
        for name, source in (("setup", self.prelude), (self.name, self.block.source())):
            # A name of its own whose lines linecache holds: tracebacks show the block's lines,
            # and pytest never parses the Markdown file as Python.
            filename = f"{self.path}, {name}"
            linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
            exec(compile(source, filename, "exec"), module.__dict__)
        return module


class MarkdownFile(pytest.File):
    """A Markdown file of the docs: one module per Python block."""

    def collect(self) -> Iterator[BlockModule]:
        for block, setup in blocks(self.path):
            name = f"line {block.line}"
            module = BlockModule.from_parent(self, path=self.path, name=name, nodeid=f"{self.nodeid}::{name}")
            module.block, module.prelude = block, setup
            yield module


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> MarkdownFile | None:
    if file_path.resolve() in DOCUMENTS:
        return MarkdownFile.from_parent(parent, path=file_path)
    return None
