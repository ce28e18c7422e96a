"""pytest hooks and options.  Load with ``pytest -p pytest_aegis``."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import pytest

from pytest_aegis import reporting
from pytest_aegis.backends import BackendUnavailable
from pytest_aegis.config import SETTINGS, AegisConfig, ConfigError, Setting
from pytest_aegis.fixtures import MARKER, spec_for
from pytest_aegis.harness import HARNESS, Harness, get_harness
from pytest_aegis.nats_spec import SpecError
from pytest_aegis.postgres.migrations import parse_migrations
from pytest_aegis.session import sweep

BACKENDS_MARKER = "aegis_backends"
MARKERS = (
    f"{MARKER}(auth='userpass', tls=True, mtls=False, server_cert='valid', permissions=None, users=(), "
    "jetstream=True): run the test against a secured NATS server of this spec (fixtures nats_secure, "
    "nats_client). auth: none|userpass|token|nkey|jwt; server_cert: valid|expired|not_yet_valid|wrong_host|"
    "untrusted.",
    f"{BACKENDS_MARKER}(*names): run the test only on these backends (local, docker, external); "
    "skipped on the others with the reason",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aegis", "pytest-aegis: real secured servers as fixtures")
    for setting in SETTINGS:
        if setting.kind == "bool":
            group.addoption(
                setting.flag,
                dest=setting.dest,
                action="store_const",
                const="true",
                default=None,
                help=f"{setting.help} (ini {setting.ini}, env {setting.env})",
            )
        else:
            group.addoption(
                setting.flag,
                dest=setting.dest,
                default=None,
                help=f"{setting.help} (ini {setting.ini}, env {setting.env}, "
                f"default {setting.default or 'none'})",
            )
        parser.addini(
            setting.ini, f"{setting.help} (default {setting.default or 'none'})", type="string", default=""
        )


def _lookup(config: pytest.Config) -> Any:
    def lookup(setting: Setting) -> Any:
        value = config.getoption(setting.dest)
        return value if value is not None else config.getini(setting.ini)

    return lookup


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    try:
        settings = AegisConfig.resolve(_lookup(config))
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.pg_migrations is not None:
        # A relative directory is relative to the rootdir: resolved once here, so the
        # frozen config is the only truth.
        source = parse_migrations(settings.pg_migrations, config.rootpath)
        resolved = str(source.directory) if source.directory is not None else settings.pg_migrations
        settings = dataclasses.replace(settings, pg_migrations=resolved)
    config.stash[HARNESS] = Harness(settings)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    swept = get_harness(session.config).swept = sweep()
    # Containers do not die with pytest: remove those whose session is dead (after the dirs above).
    from pytest_aegis.backends.docker.sweep import sweep_if_engine

    swept.containers = sweep_if_engine()


def pytest_report_header(config: pytest.Config) -> list[str]:
    harness = get_harness(config)
    try:
        backend = harness.backend.describe()
    except BackendUnavailable as exc:
        backend = f"{harness.config.backend} (unavailable: {str(exc).splitlines()[0]})"
    lines = [f"aegis: backend {backend}; keep={harness.config.keep}"]
    try:
        lines.append(f"aegis: {harness.backend.describe_postgres()}")
    except BackendUnavailable as exc:
        lines.append(f"aegis: postgres unavailable ({str(exc).splitlines()[0]})")
    swept = harness.swept
    if swept:
        lines.append(
            f"aegis: swept {len(swept.sessions)} dead session(s), killed {len(swept.killed)} process(es)"
        )
    if swept is not None and swept.containers:
        lines.append(f"aegis: removed {len(swept.containers)} container(s) of dead sessions")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Validate every nats_secure marker up front: a bad one is a usage error, not N failures."""
    problems = []
    for item in items:
        try:
            spec_for(item)
        except SpecError as exc:
            problems.append(str(exc))
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker(BACKENDS_MARKER)
    if marker is not None:
        harness = get_harness(item.config)
        backend: str = harness.backend.name if harness.config.backend == "auto" else harness.config.backend
        if backend not in marker.args:
            reason = marker.kwargs.get("reason", "")
            pytest.skip(
                f"only on the {'/'.join(marker.args)} backend(s), this session uses {backend}"
                + (f": {reason}" if reason else "")
            )
    reporting.note_offsets(item, get_harness(item.config).log_sources())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        for title, text in reporting.log_sections(item):
            report.sections.append((title, text))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    get_harness(session.config).close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    kept = get_harness(config).kept
    if not kept:
        return
    terminalreporter.section("aegis: servers left running (--aegis-keep)")
    for server in kept:
        terminalreporter.write_line(f"{server.name}: {server.url}  {server.keep_instructions()}")
        for key, value in server.env().items():
            terminalreporter.write_line(f"    {key}={value}")


def pytest_unconfigure(config: pytest.Config) -> None:
    harness = config.stash.get(HARNESS, None)
    if harness is not None:
        harness.close()
