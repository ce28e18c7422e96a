"""Every pytest hook of the plugin.  Load with ``pytest -p pytest_aegis``.

Options (one ``aegis`` group, CLI default ``None`` falling back to ini, then env), markers,
the header, the session-start sweep, marker validation, backend skips, failure reports with
server logs, the ``--aegis-keep`` summary, and the teardown of what the session started.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_aegis import clients, markers, reporting
from pytest_aegis.app import coverage
from pytest_aegis.config import SETTINGS, AegisConfig, Setting
from pytest_aegis.errors import BackendMisconfigured, BackendUnavailable, ConfigError
from pytest_aegis.harness import HARNESS, Harness, get_harness
from pytest_aegis.matrix import record as matrix
from pytest_aegis.session import sweep

if TYPE_CHECKING:
    from pytest_aegis.backends.base import Backend

#: Each phase's outcome of a test, to tell whether it passed (what it proved counts only then).
_OUTCOMES = pytest.StashKey[list[str]]()
#: Where xdist workers put their matrix for the controller.
_WORKER_MATRIX = "aegis_matrix"


def _shown_default(setting: Setting) -> str:
    return "none" if setting.default in (None, ()) else str(setting.default).lower()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aegis", "pytest-aegis: real secured servers as fixtures")
    for setting in SETTINGS:
        where = f"ini {setting.ini}, env {setting.env}"
        if setting.kind == "bool":
            group.addoption(
                setting.flag, dest=setting.dest, action="store_const", const="true", default=None,
                help=f"{setting.described} ({where})",
            )  # fmt: skip
        else:
            group.addoption(
                setting.flag, dest=setting.dest, default=None,
                help=f"{setting.described} ({where}, default {_shown_default(setting)})",
            )  # fmt: skip
        parser.addini(
            setting.ini, f"{setting.help} (default {_shown_default(setting)})", type="string", default=""
        )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in markers.marker_lines(full=bool(config.getoption("markers", False))):
        config.addinivalue_line("markers", line)
    try:
        settings = AegisConfig.resolve(
            lambda setting: config.getoption(setting.dest), lambda setting: config.getini(setting.ini)
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.pg_migrations is not None:
        from pytest_aegis.postgres.migrations import parse_migrations

        # A relative directory is relative to the rootdir: resolved once here, so the
        # frozen config is the only truth.
        source = parse_migrations(settings.pg_migrations, config.rootpath)
        if (problem := source.problem()) is not None:
            raise pytest.UsageError(f"aegis: {problem} (set by {settings.origin('pg_migrations')})")
        settings = dataclasses.replace(settings, pg_migrations=source.value)
    if settings.app_env:  # checked once, here, not by every test that starts the service
        from pytest_aegis.app.spec import parse_env_map

        try:
            parse_env_map(settings.app_env)
        except ValueError as exc:
            raise pytest.UsageError(f"{exc} (set by {settings.origin('app_env')})") from None
    harness = config.stash[HARNESS] = Harness(settings)
    if settings.servers:  # every declared third-party server checked once, here
        from pytest_aegis.thirdparty.declared import parse_servers

        try:
            harness.servers = parse_servers(settings.servers, settings.origin("servers"))
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    if settings.apps:  # likewise every declared app (its depends_on may name those servers)
        from pytest_aegis.app.declared import parse_apps
        from pytest_aegis.thirdparty.presets import PRESETS

        try:
            harness.apps = parse_apps(
                settings.apps,
                settings.origin("apps"),
                config.rootpath,
                servers={*PRESETS, *harness.servers},
            )
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    matrix.activate(harness.matrix)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    harness = get_harness(session.config)
    swept = harness.swept = sweep()
    # Containers do not die with pytest: remove those whose session is dead (after the dirs above),
    # when a dead session had started some (its directory said so), or an earlier sweep could not.
    if swept.containers_to_sweep:
        from pytest_aegis.backends.docker.sweep import sweep_if_engine

        swept.containers = sweep_if_engine()
    backend = _backend_or_usage_error(harness)
    # An eager backend (external) is made now by the session's owner, not an xdist worker: it
    # notes the servers' state before any test runs.
    if backend is not None and harness.backend_is_eager and not hasattr(session.config, "workerinput"):
        backend.own_session()


def _backend_or_usage_error(harness: Harness) -> Backend | None:
    """A backend chosen by name, made now; under ``auto`` none (made on first use), but the
    settings given for the backends it may pick are checked.  A wrong setting (a bad URL, a
    binary path that is not one), or a backend chosen by name that cannot run, is a usage error:
    reported once and whole, naming where it was set, instead of by every test.  ``auto`` finding
    nothing is not (a session of unit tests needs no server): the header says why, and each test
    that needs a server errors."""
    config = harness.config
    try:
        if config.backend == "auto":
            if config.nats_bin is not None or config.pg_bin_dir is not None:  # else: import nothing
                from pytest_aegis.backends import check_auto_settings

                check_auto_settings(config)
            return None
        return harness.backend
    except BackendMisconfigured as exc:
        raise pytest.UsageError(f"aegis: {exc}") from None
    except BackendUnavailable as exc:
        origin = harness.config.origin("backend")
        raise pytest.UsageError(
            f"aegis: backend {harness.config.backend!r} (set by {origin}) cannot run here:\n{exc}"
        ) from None


def _whole(error: Exception) -> str:
    """An error's message for the report header: every line, the later ones indented."""
    return "\n    ".join(str(error).splitlines())


def pytest_report_header(config: pytest.Config) -> list[str]:
    harness = get_harness(config)
    try:
        backend = harness.backend.describe()
    except BackendUnavailable as exc:
        backend = f"{harness.config.backend} (unavailable: {_whole(exc)})"
    lines = [f"aegis: backend {backend}; keep={harness.config.keep}"]
    try:
        lines.append(f"aegis: {harness.backend.describe_postgres()}")
    except BackendUnavailable as exc:
        lines.append(f"aegis: postgres unavailable ({_whole(exc)})")
    if (measured := coverage.describe(_backend_name(harness))) is not None:
        lines.append(f"aegis: {measured}")
    swept = harness.swept
    if swept:
        lines.append(
            f"aegis: swept {len(swept.sessions)} dead session(s), killed {len(swept.killed)} process(es)"
        )
    if swept is not None and swept.containers:
        lines.append(f"aegis: removed {len(swept.containers)} container(s) of dead sessions")
    return lines


def _backend_name(harness: Harness) -> str:
    """The backend that runs (``auto`` resolved), without starting it if it cannot be made."""
    if harness.config.backend != "auto":
        return harness.config.backend
    try:
        return harness.backend.name
    except BackendUnavailable:
        return "auto"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Validate every nats_secure marker up front: a bad one is a usage error, not N failures."""
    markers.check_specs(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    harness = get_harness(item.config)
    if item.get_closest_marker(markers.BACKENDS_MARKER) is not None:
        backend = harness.backend.name if harness.config.backend == "auto" else harness.config.backend
        if (reason := markers.backend_skip_reason(item, backend)) is not None:
            pytest.skip(reason)
    reporting.note_offsets(item, harness.log_sources())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, Any]:
    recorder = get_harness(item.config).matrix
    recorder.begin()
    try:
        return (yield)
    finally:
        outcomes = item.stash.get(_OUTCOMES, [])
        recorder.end(passed=len(outcomes) == 3 and all(outcome == "passed" for outcome in outcomes))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Clients the test got from the harness and left open are closed when its call ends."""
    with clients.closed_after():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_OUTCOMES, []).append(report.outcome)
    if report.failed:
        for title, text in reporting.log_sections(item):
            report.sections.append((title, text))
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge what a worker's tests proved."""
    rows = getattr(node, "workeroutput", {}).get(_WORKER_MATRIX)
    if rows:
        get_harness(node.config).matrix.merge_json(rows)


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its report
def pytest_sessionfinish(session: pytest.Session) -> None:
    harness = get_harness(session.config)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports for the session
        workeroutput[_WORKER_MATRIX] = harness.matrix.to_json()
    elif harness.matrix.rows or harness.config.require:
        from pytest_aegis.matrix import report as matrix_report

        missing = matrix_report.finish(session.config, harness.matrix, harness.config)
        if missing and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    harness.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    harness = get_harness(config)
    if (harness.matrix.rows or harness.config.require) and not hasattr(config, "workerinput"):
        _matrix_summary(terminalreporter, harness)
    for notice in harness.notices():
        terminalreporter.write_line(f"aegis: {notice}", yellow=True)
    kept = harness.kept
    if not kept:
        return
    terminalreporter.section("aegis: servers left running (--aegis-keep)")
    for server in kept:
        terminalreporter.write_line(f"{server.name}: {server.url}  {server.keep_instructions()}")
        for key, value in server.env().items():
            terminalreporter.write_line(f"    {key}={value}")


def _matrix_summary(terminalreporter: Any, harness: Harness) -> None:
    from pytest_aegis.matrix import report as matrix_report

    if harness.matrix.rows:
        terminalreporter.section("aegis: security matrix")
        for line in matrix_report.table(harness.matrix.rows.values()):
            terminalreporter.write_line(line)
    missing = matrix_report.missing(harness.config.require, harness.matrix.rows.values())
    if missing:
        terminalreporter.write_line(matrix_report.gate_message(missing), red=True, bold=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    harness: Harness | None = config.stash.get(HARNESS, None)
    if harness is not None:
        matrix.deactivate(harness.matrix)
        harness.close()
