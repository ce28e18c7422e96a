"""Tables of the docs generated from the code, so no keyword or setting is spelled twice.

``aegis-marker-keywords``
    The ``@pytest.mark.nats_secure`` keywords (keyword | values | default | what), from
    :func:`pytest_aegis.natsd.spec.keywords` (itself derived from :class:`NatsSpec`'s fields).

``aegis-auth-modes``
    The ``auth=`` values (auth | what | per-user | env), from
    :data:`pytest_aegis.natsd.auth.AUTH_MODES`: whether ``permissions`` / ``users`` apply, and
    which ``AEGIS_NATS_*`` variables carry the credentials to a service under test.

``aegis-options``
    The plugin's settings (flag | ini | env | default | what), from
    :data:`pytest_aegis.config.SETTINGS`.  Options: ``:prefix: docker_`` keeps only the settings
    whose field starts with ``docker_``.  The directive's content may add notes the code does not
    carry, one a line, ``field: text`` (e.g. ``nats_bin: default: the venv's nats-server``); a note
    for a field that no longer exists is a warning, so a rename fails ``make docs``.

Both build docutils tables directly; in cell text, ```code``` spans become literals, so the
descriptions read the same in the code's help lines and here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

Cell = list[nodes.Node]
#: What a description from the code shows as code: `a span`, a --flag, a 'quoted string'.
_CODE = re.compile(r"`([^`]+)`|(?<![\w-])(--[a-z][\w-]*)|(?<!\w)'([^'\s][^']*)'(?!\w)")


def text_cell(text: str) -> Cell:
    """A description from the code as inline nodes: ```spans```, ``--flags`` and ``'quoted'``
    strings become literals (unquoted), the rest plain text."""
    out: Cell = []
    position = 0
    for match in _CODE.finditer(text):
        if match.start() > position:
            out.append(nodes.Text(text[position : match.start()]))
        literal = next(group for group in match.groups() if group is not None)
        out.append(nodes.literal(literal, literal))
        position = match.end()
    if position < len(text):
        out.append(nodes.Text(text[position:]))
    return out


def code_cell(*values: str, sep: str = ", ") -> Cell:
    """Each value as a literal, joined by ``sep``."""
    out: Cell = []
    for index, value in enumerate(values):
        if index:
            out.append(nodes.Text(sep))
        out.append(nodes.literal(value, value))
    return out


def build_table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell]], widths: Sequence[int], classes: Sequence[str]
) -> nodes.table:
    """A docutils table: one header row, then ``rows`` (each a list of cells of inline nodes)."""
    table = nodes.table(classes=["aegis-table", *classes])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row(cells: Sequence[Cell]) -> nodes.row:
        out = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", *cell)
            out += entry
        return out

    head = nodes.thead()
    head += row([[nodes.Text(header)] for header in headers])
    group += head
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += body
    return table


# -- the nats_secure keywords ------------------------------------------------------------------


def _keyword_default(default: Any) -> Cell:
    if default is None or default == ():
        return [nodes.Text("none")]
    if isinstance(default, str):
        return code_cell(f'"{default}"')
    return code_cell(repr(default))


class MarkerKeywordsDirective(SphinxDirective):
    """``aegis-marker-keywords``: the ``nats_secure`` keywords table."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from pytest_aegis.natsd.spec import keywords

        rows = []
        for keyword in keywords():
            if keyword.values:
                values = code_cell(*(f'"{value}"' for value in keyword.values))
            elif isinstance(keyword.default, bool):
                values = code_cell("True", "False")
            else:
                values = [nodes.Text("a structure, see "), nodes.emphasis("", "what")]
            rows.append(
                [
                    code_cell(keyword.name),
                    values,
                    _keyword_default(keyword.default),
                    text_cell(keyword.description),
                ]
            )
        return [
            build_table(["keyword", "values", "default", "what"], rows, [12, 30, 12, 46], ["aegis-keywords"])
        ]


# -- the auth modes ---------------------------------------------------------------------------


class AuthModesDirective(SphinxDirective):
    """``aegis-auth-modes``: the ``auth=`` values of ``nats_secure``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from pytest_aegis.natsd.auth import AUTH_MODES

        rows = []
        for mode in AUTH_MODES.values():
            if not mode.per_user:
                users: Cell = [nodes.Text("no")]
            elif mode.user_passwords:
                users = [
                    nodes.Text("yes (an extra user may bring its own "),
                    nodes.literal("password", "password"),
                    nodes.Text(")"),
                ]
            else:
                users = [nodes.Text("yes")]
            env = code_cell(*(f"AEGIS_NATS_{suffix}" for suffix in mode.env.values())) or [nodes.Text("none")]
            rows.append([code_cell(f'"{mode.name}"'), text_cell(mode.help), users, env])
        headers = ["auth", "what", "permissions and users", "credentials for a service under test"]
        return [build_table(headers, rows, [10, 40, 22, 28], ["aegis-auth-modes"])]


# -- the settings ------------------------------------------------------------------------------


def _setting_default(setting: Any) -> Cell:
    default = setting.default
    if default is None or default == ():  # what "unset" means is in the help ("default: ...") or a note
        return [nodes.Text("unset")]
    if setting.kind == "bool":
        return [nodes.Text("on" if default else "off")]
    if setting.kind == "seconds":
        return [nodes.Text(f"{default:g} s")]
    return code_cell(str(default))


class OptionsDirective(SphinxDirective):
    """``aegis-options``: the settings table (flag | ini | env | default | what)."""

    has_content = True
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {"prefix": directives.unchanged}

    def _notes(self, fields: set[str]) -> dict[str, list[Cell]]:
        """The content's ``field: text`` lines, the text parsed as the page's inline markup."""
        notes: dict[str, list[Cell]] = {}
        for offset, line in enumerate(self.content):
            if not line.strip():
                continue
            field, sep, note = line.partition(":")
            field = field.strip()
            if not sep or field not in fields:
                logger.warning(
                    "aegis-options: note for unknown setting %r (expected 'field: text'; fields: %s)",
                    field,
                    ", ".join(sorted(fields)),
                    location=self.get_location(),
                )
                continue
            parsed, messages = self.parse_inline(note.strip(), lineno=self.content_offset + offset + 1)
            notes.setdefault(field, []).append([*parsed, *messages])
        return notes

    def run(self) -> list[nodes.Node]:
        from pytest_aegis.config import SETTINGS

        prefix = self.options.get("prefix", "")
        selected = [setting for setting in SETTINGS if setting.field.startswith(prefix)]
        if not selected:
            logger.warning("aegis-options: no setting starts with %r", prefix, location=self.get_location())
            return []
        notes = self._notes({setting.field for setting in selected})
        rows = []
        for setting in selected:
            what = text_cell(setting.help)
            if setting.choices and not all(
                re.search(rf"\b{choice}\b", setting.help) for choice in setting.choices
            ):
                what += [nodes.Text("; values: "), *code_cell(*setting.choices)]
            for note in notes.get(setting.field, []):
                what += [nodes.Text("; "), *note]
            rows.append(
                [
                    code_cell(setting.flag),
                    code_cell(setting.ini),
                    code_cell(setting.env),
                    _setting_default(setting),
                    what,
                ]
            )
        return [
            build_table(
                ["flag", "ini", "env", "default", "what"], rows, [22, 20, 22, 10, 46], ["aegis-options"]
            )
        ]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("aegis-marker-keywords", MarkerKeywordsDirective)
    app.add_directive("aegis-auth-modes", AuthModesDirective)
    app.add_directive("aegis-options", OptionsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
