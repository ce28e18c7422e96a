"""The soak's pure logic (bench/soak): JUnit XML into outcomes, runs into the summary, the plan of
runs (backends in turn, command lines, environment) and the option checks.  No process is run."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree.ElementTree import ParseError

import pytest

import bench.soak.__main__ as soak_main
from bench.soak.__main__ import build_parser, settings_of
from bench.soak.junit import node_id, outcomes
from bench.soak.plan import CI_ENV, Settings, backend_of, env_prefix, parse_backends, pytest_command, run_env
from bench.soak.summary import CRASHED, TIMED_OUT, RunResult, run_from_json, summarize

# What pytest -o junit_family=xunit1 writes (abridged): a collection error, a teardown error, a
# failure, a skip, an xfail, a pass, parametrized methods of a class.
REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest">
<testcase classname="" name="tests.test_broken" file="tests/test_broken.py" time="0.000">
  <error message="collection failure">ImportError</error></testcase>
<testcase classname="tests.sub.test_a" name="test_td" file="tests/sub/test_a.py" line="7" time="0.001">
  <error message="failed on teardown">RuntimeError</error></testcase>
<testcase classname="tests.sub.test_a" name="test_ok" file="tests/sub/test_a.py" line="5" time="0.001"/>
<testcase classname="tests.sub.test_a" name="test_fail" file="tests/sub/test_a.py" line="6" time="0.001">
  <failure message="assert 0">assert 0</failure></testcase>
<testcase classname="tests.sub.test_a" name="test_skip" file="tests/sub/test_a.py" line="8">
  <skipped type="pytest.skip" message="no">no</skipped></testcase>
<testcase classname="tests.sub.test_a" name="test_xf" file="tests/sub/test_a.py" line="10">
  <skipped type="pytest.xfail" message=""/></testcase>
<testcase classname="tests.sub.test_a.TestK" name="test_m[a::b]" file="tests/sub/test_a.py" line="13"/>
</testsuite></testsuites>"""


def test_a_report_gives_each_test_its_node_id_and_outcome():
    assert outcomes(REPORT) == {
        "tests/test_broken.py": "error",
        "tests/sub/test_a.py::test_td": "error",
        "tests/sub/test_a.py::test_ok": "passed",
        "tests/sub/test_a.py::test_fail": "failed",
        "tests/sub/test_a.py::test_skip": "skipped",
        "tests/sub/test_a.py::test_xf": "skipped",
        "tests/sub/test_a.py::TestK::test_m[a::b]": "passed",
    }


@pytest.mark.parametrize(
    ("classname", "name", "file", "expected"),
    [
        ("tests.t", "test_x", "tests/t.py", "tests/t.py::test_x"),
        ("tests.t.TestA.TestB", "test_x[1]", "tests/t.py", "tests/t.py::TestA::TestB::test_x[1]"),
        ("", "tests.t", "tests/t.py", "tests/t.py"),  # a collection error
        ("elsewhere.t", "test_x", "tests/t.py", "elsewhere.t::test_x"),  # file and class disagree
        # a file outside the rootdir: pytest's node id has an empty path (::test_x)
        ("", "test_x", "../../tmp/t.py", "../../tmp/t.py::test_x"),
        (".TestA", "test_x[2]", "../../tmp/t.py", "../../tmp/t.py::TestA::test_x[2]"),
        ("tests.t", "test_x", None, "tests.t::test_x"),  # xunit2: no file
        ("", "test_x", None, "test_x"),
    ],
)
def test_node_id(classname, name, file, expected):
    assert node_id(classname, name, file) == expected


def test_a_test_reported_twice_keeps_its_worse_outcome():
    twice = """<testsuites><testsuite>
    <testcase classname="t" name="test_a" file="t.py"><failure message="x"/></testcase>
    <testcase classname="t" name="test_a" file="t.py"><error message="teardown"/></testcase>
    <testcase classname="t" name="test_b" file="t.py"/>
    <testcase classname="t" name="test_b" file="t.py"><skipped/></testcase>
    </testsuite></testsuites>"""
    assert outcomes(twice) == {"t.py::test_a": "failed", "t.py::test_b": "skipped"}


def test_the_nameless_testcase_of_an_interrupted_session_is_no_test():
    interrupted = """<testsuites><testsuite tests="1">
    <testcase classname="" name="test_quick" file="../../tmp/t.py" line="8" time="0.002" />
    <testcase time="0.434" /></testsuite></testsuites>"""
    assert outcomes(interrupted) == {"../../tmp/t.py::test_quick": "passed"}


def test_a_broken_report_raises():
    with pytest.raises(ParseError):
        outcomes("<testsuites><testsuite><testcase")


def _run(index=0, exit_code=0, found=None, backend="local", timed_out=False, tail=("last line",)):
    return RunResult(
        index=index,
        backend=backend,
        seed=1234,
        command="python -m pytest",
        exit_code=exit_code,
        duration_s=12.345,
        outcomes=found,
        log=f"bench-results/soak/run-{index:02d}-{backend}.log",
        timed_out=timed_out,
        output_tail=tail,
    )


def test_a_run_fails_by_its_failed_and_errored_tests():
    run = _run(exit_code=1, found={"t.py::b": "failed", "t.py::a": "error", "t.py::c": "passed"})
    assert run.failures() == ["t.py::a", "t.py::b"]
    entry = run.to_json()
    assert (entry["passed"], entry["failed"], entry["errors"], entry["skipped"]) == (1, 1, 1, 0)
    assert entry["duration_s"] == 12.3 and entry["output_tail"] == ["last line"]


@pytest.mark.parametrize(
    ("exit_code", "found"),
    [
        (5, {}),  # no tests ran
        (1, {"t.py::a": "passed"}),  # a session-level failure: an unmet --aegis-require
        (-9, None),  # killed: no report
        (0, None),  # exit 0 but no readable report
    ],
)
def test_a_run_that_fails_without_a_failed_test_counts_as_a_crash(exit_code, found):
    assert _run(exit_code=exit_code, found=found).failures() == [CRASHED]


def test_a_run_killed_at_its_deadline_counts_as_timed_out_besides_its_failed_tests():
    assert _run(exit_code=-2, found=None, timed_out=True).failures() == [TIMED_OUT]
    run = _run(exit_code=-2, found={"t.py::a": "failed"}, timed_out=True)
    assert run.failures() == ["t.py::a", TIMED_OUT]
    assert run.to_json()["timed_out"] is True


def test_a_passing_run_has_no_failures_and_no_output_tail():
    entry = _run(found={"t.py::a": "passed", "t.py::b": "skipped"}).to_json()
    assert entry["failures"] == [] and "output_tail" not in entry and "timed_out" not in entry


def test_the_summary_counts_failures_per_test_over_the_runs_it_was_in():
    runs = [
        _run(0, 0, {"t.py::a": "passed", "t.py::b": "passed"}),
        _run(1, 1, {"t.py::a": "failed", "t.py::b": "passed"}, backend="docker"),
        _run(2, 1, {"t.py::a": "failed", "t.py::c": "error"}),
        _run(3, 5, {}, backend="docker"),
    ]
    document = summarize(runs, {"command": "python -m bench.soak"})
    assert document["command"] == "python -m bench.soak"
    assert document["total_failures"] == 4
    assert document["tests"] == {  # most failures first
        "t.py::a": {"runs": 3, "failed": 2, "failed_in": [1, 2]},
        CRASHED: {"runs": 4, "failed": 1, "failed_in": [3]},
        "t.py::c": {"runs": 1, "failed": 1, "failed_in": [2]},
    }
    assert document["totals"] == {
        "runs": 4,
        "failed_runs": 3,
        "by_backend": {"local": 2, "docker": 2},
        "tests": 3,
        "passed": 3,
        "failed": 2,
        "errors": 1,
        "skipped": 0,
    }
    assert [run["index"] for run in document["runs"]] == [0, 1, 2, 3]


def test_a_clean_soak_sums_to_zero():
    document = summarize([_run(0, 0, {"t.py::a": "passed"}), _run(1, 0, {"t.py::a": "passed"})], {})
    assert document["total_failures"] == 0 and document["tests"] == {}
    assert document["totals"]["failed_runs"] == 0


def test_runs_take_the_backends_in_turn():
    assert [backend_of(i, ("local", "docker")) for i in range(5)] == [
        "local",
        "docker",
        "local",
        "docker",
        "local",
    ]
    assert {backend_of(i, ("local",)) for i in range(3)} == {"local"}


def test_backends_are_parsed_and_an_unknown_one_is_named():
    assert parse_backends("local,docker") == ("local", "docker")
    assert parse_backends(" docker ") == ("docker",)
    with pytest.raises(ValueError, match=r"unknown backend 'podman'; valid: local, docker"):
        parse_backends("local,podman")
    with pytest.raises(ValueError, match="unknown backend ''"):
        parse_backends("")


def test_the_command_lines_are_make_test_and_make_test_docker_with_a_seed_and_a_report():
    settings = Settings(python="py", require="auth,tls", extra=("tests/plugin/unit", "-x"))
    tail = ["-p", "randomly", "--randomly-seed=7", "--junitxml=r.xml", "-o", "junit_family=xunit1"]
    local = pytest_command(settings, "local", 7, Path("r.xml"))
    assert local == [
        "py",
        "-m",
        "pytest",
        "-n",
        "2",
        "--aegis-require=auth,tls",
        *tail,
        "tests/plugin/unit",
        "-x",
    ]
    docker = pytest_command(settings, "docker", 7, Path("r.xml"))
    assert docker == [
        "py", "-m", "pytest", "-n", "2", "--aegis-backend=docker", "--aegis-require=auth,tls",
        "--aegis-docker-network=host", *tail, "tests/plugin/unit", "-x",
    ]  # fmt: skip
    bare = Settings(python="py", require=None, docker_network=None)
    assert pytest_command(bare, "docker", 7, Path("r.xml")) == [
        "py", "-m", "pytest", "-n", "2", "--aegis-backend=docker", *tail,
    ]  # fmt: skip


def test_every_run_has_cis_environment_unless_the_caller_set_it():
    env = run_env({"PATH": "/bin", "AEGIS_REQUIRE_DOCKER": "0"})
    assert env == {**CI_ENV, "PATH": "/bin", "AEGIS_REQUIRE_DOCKER": "0"}
    assert env_prefix(env) == (
        "AEGIS_REQUIRE_DOCKER=0 TESTCONTAINERS_RYUK_DISABLED=true TC_HOST=127.0.0.1 AEGIS_REQUIRE_FUSE=1"
    )


def test_the_defaults_are_ten_runs_alternating_local_and_docker_on_busy_cores():
    args = build_parser().parse_args([])
    assert (args.runs, args.backends, args.burners, args.no_load) == (10, ("local", "docker"), 2, False)
    assert args.out == Path("bench-results/soak.json") and args.timeout == 1800


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs", "0"], "argument --runs: must be at least 1, got 0"),
        (["--runs", "two"], "argument --runs: not a whole number: 'two'"),
        (["--backends", "local,k8s"], "argument --backends: unknown backend 'k8s'; valid: local, docker"),
        (["--timeout", "0"], "argument --timeout: must be more than 0 seconds, got 0"),
        (["--burners", "-1"], "argument --burners: must be at least 0, got -1"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_what_is_valid(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_pytest_args_are_split_like_a_shell_and_may_be_repeated():
    argv = ["--pytest-args", "tests/a -k 'x and y'", "--pytest-args=-x", "--require=auth"]
    settings = settings_of(build_parser().parse_args(argv), "py")
    assert settings == Settings(python="py", require="auth", extra=("tests/a", "-k", "x and y", "-x"))


def test_empty_require_network_and_pytest_args_are_left_out():
    argv = ["--pytest-args=", "--require=", "--docker-network="]
    settings = settings_of(build_parser().parse_args(argv), "py")
    assert settings == Settings(python="py", require=None, docker_network=None, extra=())


def test_a_run_read_back_from_its_summary_is_the_same_run():
    run = RunResult(
        index=3, backend="docker", seed=7, command="pytest", exit_code=1, duration_s=12.34,
        outcomes={"t::a": "passed", "t::b": "failed"}, log="soak/run-03-docker.log", timed_out=True,
        output_tail=("boom",),
    )  # fmt: skip
    again = run_from_json(run.to_json(), run.outcomes)
    assert again == RunResult(**{**run.__dict__, "duration_s": 12.3})
    assert summarize([again], {}) == summarize([run], {}) | {"runs": [again.to_json()]}


def test_resume_goes_on_only_with_the_same_commit_backends_and_load(tmp_path, monkeypatch):
    out = tmp_path / "soak.json"
    monkeypatch.setattr(soak_main, "_git_commit", lambda: "abc")
    earlier = {"commit": "abc", "backends": ["local", "docker"], "burners": 2, "runs": [{}, {}]}
    out.write_text(json.dumps(earlier))
    parse = build_parser().parse_args
    assert soak_main.resumable(out, parse(["--resume", "--runs", "4"])) == (earlier, None)
    _, problem = soak_main.resumable(out, parse(["--resume", "--no-load"]))
    assert (
        problem
        == f"the soak at {out} ran with busy-loop processes 2, this one would run with 0; start a new one"
    )
    _, problem = soak_main.resumable(out, parse(["--resume", "--runs", "2"]))
    assert problem == f"the soak at {out} already has 2 runs; ask for more with --runs"
    monkeypatch.setattr(soak_main, "_git_commit", lambda: "def")
    _, problem = soak_main.resumable(out, parse(["--resume"]))
    assert problem == f"the soak at {out} ran with commit abc, this one would run with def; start a new one"
    _, problem = soak_main.resumable(tmp_path / "none.json", parse(["--resume"]))
    assert problem is not None and problem.startswith(
        f"no soak summary to go on with at {tmp_path / 'none.json'}"
    )
