"""The public names: each importable from ``pytest_aegis``, lazily, as the same object its module
holds; and loading the package imports none of the heavy layers."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest_aegis

#: What ``import pytest_aegis`` must not import (the plugin loads it in every session).
HEAVY = ("nats", "pydantic", "trustme", "cryptography", "psycopg", "docker", "testcontainers", "nkeys")


def test_every_public_name_resolves_to_its_module_s_object():
    for name in pytest_aegis.__all__:
        value = getattr(pytest_aegis, name)
        if name == "nats_auth":
            assert value is importlib.import_module("pytest_aegis.nats_auth")
            continue
        assert value is getattr(importlib.import_module(pytest_aegis._LAZY[name]), name), name


def test_an_unknown_name_is_an_attribute_error():
    try:
        pytest_aegis.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_the_package_imports_no_heavy_layer():
    code = f"import sys, pytest_aegis\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_typing_imports_name_exactly_the_lazy_names():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(pytest_aegis.__file__).read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If))  # if TYPE_CHECKING:
    typed = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed.pop("nats_auth") == "pytest_aegis"
    assert typed == pytest_aegis._LAZY
