"""A pytest JUnit XML report (``-o junit_family=xunit1``) into one outcome per test.  Pure: no I/O.

A test's id is its pytest node id, ``file::Class::name[param]``, rebuilt from the ``file`` and
``classname`` attributes; a collection error has the module's file as its id.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]
#: Worst first: a test reported twice (a failure, then an error at teardown) keeps the worse one.
SEVERITY: tuple[Outcome, ...] = ("failed", "error", "skipped", "passed")
FAILING: frozenset[Outcome] = frozenset({"failed", "error"})


def node_id(classname: str, name: str, file: str | None) -> str:
    """pytest's node id of a ``<testcase>``; ``classname::name`` when it names no file.

    pytest makes ``classname`` from the node id: its file's path, dotted and without ``.py``, then
    its classes.  A file outside the rootdir has an empty path there (``classname`` ``""`` or
    ``".Class"``); a collection error has no classes and the dotted path as its ``name``.
    """
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file.removesuffix(".py").replace("/", ".")
    if classname in ("", module):
        return file if not classname and name == module else f"{file}::{name}"
    for prefix in (module + ".", "."):
        if classname.startswith(prefix):
            return f"{file}::{classname[len(prefix) :].replace('.', '::')}::{name}"
    return f"{classname}::{name}"


def _outcome(case: ET.Element) -> Outcome:
    if case.find("failure") is not None:
        return "failed"
    if case.find("error") is not None:
        return "error"
    if case.find("skipped") is not None:  # xfail too
        return "skipped"
    return "passed"


def outcomes(xml_text: str) -> dict[str, Outcome]:
    """Test id -> outcome for every named ``<testcase>``; raises :class:`ET.ParseError` on a broken
    report."""
    found: dict[str, Outcome] = {}
    for case in ET.fromstring(xml_text).iter("testcase"):
        name = case.get("name")
        if not name:  # what an interrupted session adds (a bare <testcase time=...>)
            continue
        key = node_id(case.get("classname", ""), name, case.get("file"))
        outcome = _outcome(case)
        if key in found:
            outcome = min(outcome, found[key], key=SEVERITY.index)
        found[key] = outcome
    return found
