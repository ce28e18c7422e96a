"""Sphinx configuration of the pytest-aegis docs (Markdown pages through MyST).

Build: ``make docs`` (``python -m sphinx -W --keep-going -q -b html docs docs/_build/html``);
any warning fails the build, and ``make lint`` runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the plugin from this checkout (also installed editable)

project = "pytest-aegis"
author = "the pytest-aegis authors"
copyright = "the pytest-aegis authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 3  # [text](page.md#a-heading) links
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}
# Annotations the docs cannot resolve (nats-py, trustme, psycopg types) stay as written.
autodoc_type_aliases: dict[str, str] = {}

html_theme = "alabaster"
html_title = "pytest-aegis"
html_static_path: list[str] = []


def _portable_signature(app, what, name, obj, options, signature, return_annotation):  # noqa: ANN001, ANN202
    """Show ``sys.executable`` in signatures (``AppSpec``'s default command), not this machine's path."""
    if signature and repr(sys.executable) in signature:
        signature = signature.replace(repr(sys.executable), "sys.executable")
    return signature, return_annotation


def setup(app):  # noqa: ANN001, ANN201
    app.connect("autodoc-process-signature", _portable_signature)
