"""Nothing is left behind: not after a normal run, not after ``kill -9`` of pytest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from support import gone, kill_9_hanging_session, session_env, spawn_pytest

from pytest_aegis.session import SessionState, process_start_time, sweep
from pytest_aegis.waiting import wait_until

HANGING_TEST = textwrap.dedent("""
    import json, os, pathlib, threading
    import pytest

    @pytest.mark.nats_secure(auth="jwt", mtls=True)
    def test_hangs(nats_server, nats_secure):
        info = {"pytest": os.getpid(), "servers": [nats_server.pid, nats_secure.pid]}
        pathlib.Path(os.environ["PIDS_FILE"]).write_text(json.dumps(info))
        threading.Event().wait()  # until killed
""")


def test_kill_9_of_pytest_leaves_no_nats_server_and_the_next_session_reclaims_its_dir(tmp_path):
    state = tmp_path / "state"
    pids_file = tmp_path / "pids.json"
    (tmp_path / "test_hang.py").write_text(HANGING_TEST)
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    env = session_env(state, pids_file)

    info = kill_9_hanging_session("test_hang.py", env, tmp_path, pids_file)
    servers = info["servers"]

    wait_until(
        lambda: all(gone(pid) for pid in servers),
        "the killed session's nats-servers to die",
        timeout=10,
        hint="PR_SET_PDEATHSIG should kill them with pytest",
    )
    leftovers = list(state.glob("s-*"))
    assert leftovers, "the killed session's directory should still be there for the next session to sweep"

    follower = spawn_pytest(["test_ok.py"], env, tmp_path)
    assert follower.wait(timeout=120) == 0
    assert not any(path.exists() for path in leftovers), "the next session should have swept the dead one"
    assert list(state.glob("s-*")) == []


def test_sweep_kills_processes_a_dead_session_left_running(tmp_path):
    state = tmp_path / "state"
    # A session that starts a server *without* die-with-parent (as --aegis-keep does,
    # or an older version would) and then dies without cleaning up.
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from pytest_aegis.session import SessionState
        from pytest_aegis.process import ManagedProcess
        session = SessionState(root=Path({str(state)!r}))
        proc = ManagedProcess("sleeper", ["sh", "-c", "echo up; exec sleep 300"], ready=lambda l: l == "up",
                              log_path=session.new_dir("x") / "log", session=session, die_with_parent=False)
        proc.start(10)
        print(proc.pid, flush=True)
        os._exit(0)  # no cleanup, like kill -9
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    orphan = int(out.stdout.strip())
    try:
        assert process_start_time(orphan) is not None, "the orphan should outlive its session"
        report = sweep(state)
        assert [pid for pid, _ in report.killed] == [orphan]
        assert gone(orphan)
        assert list(state.glob("s-*")) == []
    finally:
        if not gone(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_sweep_never_touches_a_live_session(tmp_path):
    live = SessionState(root=tmp_path)
    marker = live.new_dir("server") / "data"
    marker.write_text("in use")
    try:
        assert not sweep(tmp_path)
        assert marker.read_text() == "in use"
    finally:
        live.close()
    assert not live.root.joinpath(marker.parent.parent.name).exists()


def test_sweep_ignores_recycled_pids(tmp_path):
    # A record whose PID now belongs to another process (different start time) is not killed.
    dead = SessionState(root=tmp_path)
    directory = dead.dir
    (directory / "procs" / str(os.getpid())).write_text(
        json.dumps({"pid": os.getpid(), "name": "ghost", "start_time": -1})
    )
    dead._lock.close()  # the owner "dies": its lock is released
    report = sweep(tmp_path)
    assert report.killed == [] and report.sessions == [directory]


def test_cli_sweep_and_certs(tmp_path):
    env = {**os.environ, "AEGIS_STATE_DIR": str(tmp_path / "state")}
    dead = SessionState(root=tmp_path / "state")
    directory = dead.dir
    dead._lock.close()
    out = subprocess.run(
        [sys.executable, "-m", "pytest_aegis", "sweep"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"removed {directory}" in out.stdout and not directory.exists()
    certs = subprocess.run(
        [sys.executable, "-m", "pytest_aegis", "certs", str(tmp_path / "certs")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ca.pem" in certs.stdout
    assert oct((tmp_path / "certs" / "server-valid.key").stat().st_mode & 0o777) == "0o600"
