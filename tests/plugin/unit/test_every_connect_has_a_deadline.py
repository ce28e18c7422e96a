"""Every connection the harness opens has a deadline: a static check over the plugin's source.

NATS clients are opened only through :func:`pytest_aegis.natsd.connect.open_client` (an overall
deadline and fast failure on refusals); every PostgreSQL connect passes ``connect_timeout``; raw
sockets are opened under ``asyncio.wait_for``.  A new call that does neither fails this test,
naming the file and line.
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest_aegis

PACKAGE = Path(pytest_aegis.__file__).parent
#: The one module allowed to call nats-py's ``Client.connect`` (it puts the deadline around it).
NATS_GATE = PACKAGE / "natsd" / "connect.py"
PG_CONNECTS = ("psycopg.connect", "psycopg.AsyncConnection.connect")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_name(node.func)}()"
    return "?"


def _parse(source: str) -> ast.Module:
    """``ast.parse`` on a fresh thread: CPython 3.11.7 can raise "AST constructor recursion depth
    mismatch" when a thread's recursion counter was left off by earlier work (seen once, late in a
    full run), and the counter is per thread."""
    result: list[ast.Module] = []
    worker = threading.Thread(target=lambda: result.append(ast.parse(source)))
    worker.start()
    worker.join()
    return result[0]


def _violations(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    tree = _parse(path.read_text())
    waited = {
        id(call.args[0])
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and _name(call.func).endswith("wait_for") and call.args
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        keywords = {keyword.arg for keyword in node.keywords}
        where = f"{path.relative_to(root)}:{node.lineno} {name}"
        if name in ("nats.connect", "Client().connect", "Client") and path != NATS_GATE:
            found.append(f"{where}: open NATS clients with natsd.connect.open_client")
        elif name in PG_CONNECTS and "connect_timeout" not in keywords:
            found.append(f"{where}: pass connect_timeout")
        elif name == "asyncio.open_connection" and id(node) not in waited:
            found.append(f"{where}: wrap in asyncio.wait_for")
    return sorted(found, key=lambda line: int(line.split(":")[1].split(" ")[0]))


def test_every_connection_the_harness_opens_has_a_deadline():
    violations = [line for path in _modules() for line in _violations(path)]
    assert not violations, "connections without a deadline:\n" + "\n".join(violations)


def test_the_check_sees_a_connection_without_a_deadline(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio, nats, psycopg\n"
        "async def f():\n"
        "    await nats.connect('nats://x')\n"
        "    psycopg.connect('dbname=x')\n"
        "    await asyncio.open_connection('h', 1)\n"
        "    await asyncio.wait_for(asyncio.open_connection('h', 1), 1)\n"
        "    psycopg.connect('dbname=x', connect_timeout=2)\n"
    )
    found = _violations(bad, root=tmp_path)
    assert [line.split(" ", 1)[0] for line in found] == ["bad.py:3", "bad.py:4", "bad.py:5"]
