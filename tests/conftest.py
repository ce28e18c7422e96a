import pytest

# Imported here, before any test: pytester takes modules imported during a test out of
# sys.modules when the test ends, and cryptography (through trustme) imported again after that no
# longer matches what its compiled core cached ("TypeError: curve must be an EllipticCurve
# instance" in the next test of that worker to make certificates).
import trustme  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture
def inner(pytester, tmp_path, monkeypatch):
    """An isolated inner pytest that loads the plugin, with its own state dir."""
    monkeypatch.setenv("AEGIS_STATE_DIR", str(tmp_path / "state"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


#: The plugin's fixtures that do not depend on the backend (the CA is made here; the isolation
#: fixture is autouse, so every test has it).
_BACKEND_FREE = {"aegis_config", "aegis_ca", "aegis_jetstream_isolation"}


def _uses_the_backend(item: pytest.Item) -> bool:
    """Whether ``item`` asks (directly or through other fixtures) for a server of the session's
    backend: any of the plugin's fixtures but those of :data:`_BACKEND_FREE`."""
    info = getattr(item, "_fixtureinfo", None)
    for name, defs in info.name2fixturedefs.items() if info is not None else ():
        module = getattr(defs[-1].func, "__module__", "")
        if module.startswith("pytest_aegis.") and name not in _BACKEND_FREE:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a backend other than local (``make test-docker``), leave out the tests that start nothing
    on the session's backend: unit tests, the benchmark smokes, and the tests that only run inner
    pytest sessions (which choose their backends by their own arguments).  The local run
    (``make test``) already ran exactly what they would run here."""
    from pytest_aegis.harness import get_harness

    if get_harness(config).config.backend in ("auto", "local"):
        return
    dropped = [item for item in items if not _uses_the_backend(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        kept = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in kept]
