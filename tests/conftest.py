import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def inner(pytester, tmp_path, monkeypatch):
    """An isolated inner pytest that loads the plugin, with its own state dir."""
    monkeypatch.setenv("AEGIS_STATE_DIR", str(tmp_path / "state"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester
