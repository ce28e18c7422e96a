"""The docs' tables generated from the code, written into the Markdown files themselves, so no
keyword or setting is spelled twice and the tables read the same on the repository page as in the
built docs.

A table lives between two comments; the first names it (and, for settings, a prefix and notes)::

    <!-- aegis-table: options prefix=docker_
    nats_bin: unset: the venv's `nats-server`, then PATH
    -->
    | flag | ini | env | default | what |
    ...
    <!-- /aegis-table -->

``marker-keywords``
    The ``@pytest.mark.nats_secure`` keywords, from :func:`pytest_aegis.natsd.spec.keywords`.
``auth-modes``
    The ``auth=`` values, from :data:`pytest_aegis.natsd.auth.AUTH_MODES`.
``options``
    The plugin's settings, from :data:`pytest_aegis.config.SETTINGS`; ``prefix=docker_`` keeps the
    settings whose field starts with ``docker_``; each note line (``field: text``, Markdown) is
    added to that setting's description, and a note for a field that does not exist is an error.

``python docs/tables.py`` rewrites the tables (``make docs-tables``); ``--check`` fails naming the
files that are out of date (``tests/docs/test_tables.py`` runs it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The Markdown files that may hold tables.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A table: its opening comment (kind, arguments, notes), the generated rows, the closing comment.
_TABLE = re.compile(
    r"(?P<open><!-- aegis-table: (?P<kind>[\w-]+)(?P<args>[^\n]*?)"
    r"(?: -->\n|\n(?P<notes>(?:(?!-->)[^\n]*\n)*?)-->\n))"
    r"(?P<body>.*?)(?P<close><!-- /aegis-table -->)",
    re.S,
)
#: What a description from the code shows as code: `a span`, a --flag, a 'quoted string'.
_CODE = re.compile(r"`([^`]+)`|(?<![\w-])(--[a-z][\w-]*)|(?<!\w)'([^'\s][^']*)'(?!\w)")


class TableError(ValueError):
    """A table comment that names an unknown table, prefix or setting."""


def text(description: str) -> str:
    """A description from the code as Markdown: ```spans```, ``--flags`` and ``'quoted'``
    strings become code (unquoted); a ``|`` is escaped."""
    out, position = [], 0
    for match in _CODE.finditer(description):
        out.append(description[position : match.start()])
        out.append(code(next(group for group in match.groups() if group is not None)))
        position = match.end()
    out.append(description[position:])
    return "".join(out).replace("|", "\\|")


def code(*values: str, sep: str = ", ") -> str:
    """Each value as inline code, joined by ``sep``."""
    return sep.join(f"`{value}`".replace("|", "\\|") for value in values)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def marker_keywords(args: str, notes: dict[str, str]) -> str:
    from pytest_aegis.natsd.spec import keywords

    rows = []
    for keyword in keywords():
        if keyword.values:
            values = code(*(f'"{value}"' for value in keyword.values))
        elif isinstance(keyword.default, bool):
            values = code("True", "False")
        else:
            values = "a structure, see *what*"
        default = keyword.default
        if default is None or default == ():
            shown = "none"
        else:
            shown = code(f'"{default}"' if isinstance(default, str) else repr(default))
        rows.append([code(keyword.name), values, shown, text(keyword.description)])
    return table(["keyword", "values", "default", "what"], rows)


def auth_modes(args: str, notes: dict[str, str]) -> str:
    from pytest_aegis.natsd.auth import AUTH_MODES

    rows = []
    for mode in AUTH_MODES.values():
        if not mode.per_user:
            users = "no"
        elif mode.user_passwords:
            users = "yes (an extra user may bring its own `password`)"
        else:
            users = "yes"
        env = code(*(f"AEGIS_NATS_{suffix}" for suffix in mode.env.values())) or "none"
        rows.append([code(f'"{mode.name}"'), text(mode.help), users, env])
    return table(["auth", "what", "permissions and users", "credentials for a service under test"], rows)


def _setting_default(setting: Any) -> str:
    default = setting.default
    if default is None or default == ():  # what "unset" means is in the help ("default: ...") or a note
        return "unset"
    if setting.kind == "bool":
        return "on" if default else "off"
    if setting.kind == "seconds":
        return f"{default:g} s"
    return code(str(default))


def options(args: str, notes: dict[str, str]) -> str:
    from pytest_aegis.config import SETTINGS

    prefix = dict(arg.split("=", 1) for arg in args.split()).get("prefix", "")
    selected = [setting for setting in SETTINGS if setting.field.startswith(prefix)]
    if not selected:
        raise TableError(f"options: no setting starts with {prefix!r}")
    unknown = set(notes) - {setting.field for setting in selected}
    if unknown:
        fields = ", ".join(sorted(setting.field for setting in selected))
        raise TableError(f"options: notes for unknown settings {sorted(unknown)} (fields: {fields})")
    rows = []
    for setting in selected:
        what = text(setting.help)
        if setting.choices and not all(
            re.search(rf"\b{choice}\b", setting.help) for choice in setting.choices
        ):
            what += "; values: " + code(*setting.choices)
        if setting.field in notes:
            what += "; " + notes[setting.field].replace("|", "\\|")
        rows.append(
            [code(setting.flag), code(setting.ini), code(setting.env), _setting_default(setting), what]
        )
    return table(["flag", "ini", "env", "default", "what"], rows)


TABLES: dict[str, Callable[[str, dict[str, str]], str]] = {
    "marker-keywords": marker_keywords,
    "auth-modes": auth_modes,
    "options": options,
}


def render(markdown: str, where: str) -> str:
    """``markdown`` with every table regenerated; :class:`TableError` naming ``where``."""

    def fill(match: re.Match[str]) -> str:
        kind = match["kind"]
        if kind not in TABLES:
            raise TableError(f"{where}: unknown table {kind!r}; known: {', '.join(TABLES)}")
        notes = {}
        for line in filter(str.strip, (match["notes"] or "").splitlines()):
            field, sep, note = line.partition(":")
            if not sep:
                raise TableError(f"{where}: table {kind}: a note is 'field: text', not {line!r}")
            notes[field.strip()] = note.strip()
        try:
            body = TABLES[kind](match["args"], notes)
        except TableError as exc:
            raise TableError(f"{where}: {exc}") from None
        return match["open"] + body + match["close"]

    return _TABLE.sub(fill, markdown)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path in DOCUMENTS:
        current = path.read_text()
        wanted = render(current, str(path.relative_to(ROOT)))
        if wanted != current:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(wanted)
    if check and stale:
        print(f"tables out of date in {', '.join(stale)}: run `make docs-tables`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
