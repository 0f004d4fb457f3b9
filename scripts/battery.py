"""A bad-input battery: run the real ``distill`` commands on bad inputs and faults, and check the house rules.

    python scripts/battery.py               # every case, a table, a summary line; exit 0 only when all pass
    python scripts/battery.py -k overwrite  # only the cases whose name matches a regular expression
    python scripts/battery.py --list        # the cases and their commands, nothing run

Every case sets up its inputs in a folder of its own (a tiny model made once with ``distill tiny --layers 1``, a
tiny nano task, and a traces folder written by a scripted local server are shared, read-only), runs one command
in a subprocess (``python -m distill ...``, offline, with a timeout) and is then classified:

- **traceback**: stderr holds "Traceback (most recent call last)", or the exit code is neither expected nor 0
  (a crash, a timeout);
- **data lost**: a file the case declares precious changed or vanished (a snapshot of paths and hashes is taken
  before the command and compared after it);
- **silently wrong**: exit 0 where an error was due; a failed command that left a ``run.json`` saying
  "complete"; an exit 2 without one ``distill CMD: error: ...`` line, or with one that does not name what the
  case expects (the file:line, the option ...); the API key (or a token the case passes) found in stdout, stderr
  or any file the command wrote; or the case's own check of the outputs failed.

The generate cases talk to scripted OpenAI-compatible servers on 127.0.0.1 (one ``http.server`` in this
process, one behaviour per URL path: answers right or wrong, HTTP 400 to everything, a null or an int content,
token usage as strings, a 401 whose body echoes the ``Authorization`` header, ...). Running as root, a
read-only folder cannot be made with chmod (root writes anyway): the unwritable ``--out`` cases use a path
under ``/proc`` and a path under a file instead.

The last line is ``tracebacks: N, data lost: N, silently wrong: N, ok: N``; the exit code is 0 only when the
three bad counts are 0. ``--keep`` keeps the work folder (printed) to look at a case's files afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-battery-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:32]
TRACEBACK = "Traceback (most recent call last)"
ERROR_LINE = re.compile(r"^distill(?: [\w-]+)?: error: \S.*$", re.M)


# ============================================================================================ scripted servers
class _Handler(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose behaviour is the first path segment: ``/MODE/v1/chat/completions``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._send(404, {"error": {"message": "not here"}})

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        mode = self.path.strip("/").split("/")[0]
        auth = self.headers.get("Authorization", "")
        chat = self.path.endswith("/chat/completions")
        prompt = json.dumps(body.get("messages") or body.get("prompt") or "")
        m = re.search(r"(\d+) \+ (\d+)", prompt)
        answer = int(m.group(1)) + int(m.group(2)) if m else 0
        text = f"<think>\nAdd the columns from the right.\n</think>\n\nThe sum is \\boxed{{{answer}}}."
        usage: Any = {"prompt_tokens": 20, "completion_tokens": 12}
        if mode == "wrong":
            text = text.replace(f"{{{answer}}}", f"{{{answer + 1}}}")
        elif mode == "bad400":
            return self._send(400, {"error": {"message": "this server refuses every request"}})
        elif mode == "echo401":
            return self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
        elif mode == "err500":
            return self._send(500, {"error": {"message": "internal error"}})
        elif mode == "notjson":
            return self._send(200, b"<html>a proxy's login page</html>", "text/html")
        elif mode == "nochoices":
            return self._send(200, {"choices": [], "usage": usage})
        elif mode == "quote":
            text = text.replace("Add the columns", f"My instructions say {auth}. Add the columns")
        elif mode == "strusage":
            usage = {"prompt_tokens": "twenty", "completion_tokens": "a dozen"}
        content: Any = {"null": None, "int": 42}.get(mode, text)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": content}
        else:
            choice["text"] = content
        self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"), "choices": [choice],
                         "usage": usage})


def start_server() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================================ running distill
def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", OPENAI_API_KEY=SECRET,
               BATTERY_API_KEY=SECRET, PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               NO_COLOR="1", PYTHONWARNINGS="ignore")
    env.pop("VIRTUAL_ENV_PROMPT", None)
    return env


@dataclass
class Result:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return self.stdout + "\n" + self.stderr

    def error_lines(self) -> list[str]:
        return ERROR_LINE.findall(self.stderr)

    def error_message(self) -> str:
        """The last error line and the lines after it (a message that goes on over several lines)."""
        errors = list(ERROR_LINE.finditer(self.stderr))
        return self.stderr[errors[-1].start():] if errors else ""

    def one_line(self) -> str:
        """What the command said last that matters: its error line, else its last non-progress line."""
        if TRACEBACK in self.stderr:
            last = [ln for ln in self.stderr.splitlines() if ln.strip()]
            return "TRACEBACK " + (last[-1].strip() if last else "")
        errors = self.error_lines()
        if errors:
            return errors[-1]
        lines = [ln.strip() for ln in (self.stdout + "\n" + self.stderr).replace("\r", "\n").splitlines()]
        lines = [ln for ln in lines if ln and "it/s]" not in ln and "%|" not in ln]
        return lines[-1] if lines else "(no output)"


def distill(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Result:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "distill", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # this process group is the one started just above
        out, err = proc.communicate()
        rc, err = 124, err + f"\n(battery: killed after {timeout:.0f} s)"
    return Result(argv, rc, out, err, time.perf_counter() - start)


# ============================================================================================ snapshots
def snapshot(paths: list[Path]) -> dict[str, str]:
    """``{file path: sha256}`` of every file under ``paths`` (a missing path is recorded as missing)."""
    snap: dict[str, str] = {}
    for p in paths:
        if p.is_dir():
            files = [f for f in sorted(p.rglob("*")) if f.is_file() and not f.is_symlink()
                     and not f.name.endswith(".lock")]   # a writer's lock file (its pid) is not data
            snap[str(p) + "/"] = "dir"
        elif p.is_file():
            files = [p]
        else:
            snap[str(p)] = "missing"
            continue
        for f in files:
            snap[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return snap


def lost(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Precious files that changed or vanished (new files are not a loss)."""
    return [p for p, h in before.items() if h != "missing" and after.get(p) != h]


def run_records(folder: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("run.json") if p.is_file()}


def files_holding(folder: Path, needle: str) -> list[str]:
    hits = []
    data = needle.encode()
    for f in folder.rglob("*"):
        if f.is_file() and not f.is_symlink() and f.stat().st_size < 64 << 20 and data in f.read_bytes():
            hits.append(str(f.relative_to(folder)))
    return hits


# ============================================================================================ cases
@dataclass
class Ctx:
    """What a case sees: its own folder, the shared fixtures, the server URL, and a runner for setup steps."""

    work: Path
    fx: dict[str, Path]
    url: str
    env: dict[str, str]
    results: list[Result] = field(default_factory=list)

    def path(self, rel: str) -> Path:
        return Path(self.fmt(rel)) if self.fmt(rel).startswith("/") else self.work / self.fmt(rel)

    def fmt(self, s: str) -> str:
        values = {k: str(v) for k, v in self.fx.items()}
        values.update(W=str(self.work), URL=self.url)
        return s.format(**values)

    def write(self, rel: str, content: str | bytes | list[Any]) -> Path:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = "".join(json.dumps(r) + "\n" for r in content)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    def copy(self, src: str, dst: str) -> Path:
        s, d = self.path(src), self.path(dst)
        if s.is_dir():
            shutil.copytree(s, d)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
        return d

    def run(self, argv: str | list[str], expect: tuple[int, ...] = (0,), timeout: float = 300) -> Result:
        """A setup step: a distill command that must end with one of ``expect``."""
        args = [self.fmt(a) for a in (argv.split() if isinstance(argv, str) else argv)]
        res = distill(args, self.work, self.env, timeout)
        if res.rc not in expect:
            raise SetupFailed(f"setup step `distill {' '.join(args)}` exited {res.rc}: {res.one_line()}")
        return res


class SetupFailed(Exception):
    pass


Check = Callable[[Ctx, Result], str | None]


@dataclass
class Case:
    name: str
    argv: str | list[str]                 # after `distill`; {W}, {MODEL}, {TASK}, {TRACES}, {URL}, {FIXTURES}
    setup: Callable[[Ctx], None] | None = None
    expect: tuple[int, ...] = (2,)        # exit codes that are right (0 only when listed)
    msg: str | None = None                # regex the output must match (the error line when exit 2)
    precious: tuple[str, ...] = ()        # paths whose files must survive unchanged
    check: Check | None = None            # the case's own check of the outputs: a problem, or None
    cwd: str = "."
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()         # strings that must appear nowhere (besides the API key)
    timeout: float = 240
    heavy: int = 0                        # rough cost, to start the slow cases first

    def args(self, ctx: Ctx) -> list[str]:
        return [ctx.fmt(a) for a in (self.argv.split() if isinstance(self.argv, str) else self.argv)]


@dataclass
class Outcome:
    case: Case
    rc: int | None
    line: str
    seconds: float
    problems: dict[str, list[str]]        # category -> reasons
    multiline: bool = False               # an exit-2 error message that goes on over several lines

    @property
    def verdict(self) -> str:
        return ", ".join(k for k, v in self.problems.items() if v) or "ok"


def classify(case: Case, ctx: Ctx, res: Result, before: dict[str, str], records_before: dict[Path, str],
             precious: list[Path]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {"traceback": [], "data lost": [], "silently wrong": []}
    if TRACEBACK in res.stderr:
        problems["traceback"].append("a traceback on stderr")
    if res.rc not in case.expect:
        if res.rc == 0:
            problems["silently wrong"].append(f"exit 0 where {'/'.join(map(str, case.expect))} was due")
        else:
            problems["traceback"].append(f"exit {res.rc}, expected {'/'.join(map(str, case.expect))}")
    gone = lost(before, snapshot(precious))
    if gone:
        problems["data lost"].append("changed or vanished: " + ", ".join(gone[:4]) + (" ..." if len(gone) > 4 else ""))
    if res.rc != 0:
        for path, digest in run_records(ctx.work).items():
            if records_before.get(path) == digest:
                continue
            try:
                status = json.loads(path.read_text()).get("status")
            except (ValueError, AttributeError):
                continue
            if status == "complete":
                problems["silently wrong"].append(f"exit {res.rc} but {path.relative_to(ctx.work)} says complete")
    if res.rc == 2 and TRACEBACK not in res.stderr:
        errors = res.error_lines()
        if len(errors) != 1:
            problems["silently wrong"].append(f"exit 2 with {len(errors)} 'distill CMD: error:' lines, not one")
    if case.msg and not re.search(case.msg, res.error_message() if res.rc == 2 else res.text, re.I | re.M):
        problems["silently wrong"].append(f"the output does not match /{case.msg}/")
    for secret in (SECRET, *case.secrets):
        where = (["stdout"] if secret in res.stdout else []) + (["stderr"] if secret in res.stderr else [])
        where += files_holding(ctx.work, secret)
        if where:
            problems["silently wrong"].append("a secret appears in " + ", ".join(where[:4]))
    if case.check:
        why = case.check(ctx, res)
        if why:
            problems["silently wrong"].append(why)
    return problems


def run_case(case: Case, root: Path, fx: dict[str, Path], url: str) -> Outcome:
    work = root / "cases" / case.name
    work.mkdir(parents=True)
    env = {**base_env(), **case.env}
    ctx = Ctx(work, fx, url, env)
    start = time.perf_counter()
    try:
        if case.setup:
            case.setup(ctx)
        ctx.env.update({k: ctx.fmt(v) for k, v in case.env.items()})
        precious = [ctx.path(p) for p in case.precious]
        before = snapshot(precious)
        records_before = run_records(work)
        cwd = ctx.path(case.cwd)
        cwd.mkdir(parents=True, exist_ok=True)
        res = distill(case.args(ctx), cwd, ctx.env, case.timeout)
        problems = classify(case, ctx, res, before, records_before, precious)
        multiline = res.rc == 2 and len([ln for ln in res.error_message().splitlines() if ln.strip()]) > 1
        return Outcome(case, res.rc, res.one_line(), time.perf_counter() - start, problems, multiline)
    except SetupFailed as exc:
        return Outcome(case, None, str(exc), time.perf_counter() - start,
                       {"traceback": [f"setup failed: {exc}"], "data lost": [], "silently wrong": []})
    except Exception as exc:  # a bug in the battery itself must show, not stop the other cases
        return Outcome(case, None, f"battery error: {type(exc).__name__}: {exc}", time.perf_counter() - start,
                       {"traceback": [f"battery error: {exc}"], "data lost": [], "silently wrong": []})


# ============================================================================================ fixtures
def make_fixtures(root: Path, url: str) -> dict[str, Path]:
    """A tiny model, a tiny nano task and a traces folder (from the scripted server), made once, shared."""
    fx_dir = root / "fixtures"
    fx_dir.mkdir(parents=True)
    env = base_env()
    fx = {"FIXTURES": fx_dir, "MODEL": fx_dir / "model", "TASK": fx_dir / "task", "TRACES": fx_dir / "traces"}
    jobs = [["tiny", "--out", str(fx["MODEL"]), "--layers", "1", "--corpus-size", "400", "--vocab-size", "512",
             "--hidden", "64", "--heads", "1", "--kv-heads", "1", "--intermediate", "128"],
            ["nano-task", "--out", str(fx["TASK"]), "--train-problems", "12", "--heldout-problems", "6",
             "--warmup-examples", "16"]]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: distill(a, root, env, 600), jobs))
    results.append(distill(["generate", "--engine", "openai", "--base-url", f"{url}/good/v1", "--teacher", "served",
                            "--dataset", str(fx["TASK"] / "train.jsonl"), "--num-samples", "2", "--max-tokens", "64",
                            "--verify-workers", "0", "--out", str(fx["TRACES"])], root, env, 600))
    for res in results:
        if res.rc != 0:
            sys.exit(f"battery: fixture step `distill {' '.join(res.argv)}` failed ({res.rc}):\n{res.stderr[-3000:]}")
    return fx


# ============================================================================================ the cases
GEN = ("generate --engine openai --teacher served --num-samples 2 --max-tokens 64 --verify-workers 0 "
       "--max-retries 0 --base-url {URL}/MODE/v1")
TINY_SFT = "sft --student tiny-qwen --model {MODEL} --max-steps 1 --max-length 128 --no-packing --no-bf16"
GRPO = ("grpo --model {MODEL} --generation transformers --max-steps 1 --num-generations 2 "
        "--per-device-train-batch-size 4 --max-completion-length 8 --eval-problems 0 --no-gradient-checkpointing "
        "--no-bf16 --save-steps 1")


def gen(mode: str = "good", extra: str = "", out: str = "traces", dataset: str = "problems.jsonl") -> str:
    return f"{GEN.replace('MODE', mode)} --dataset {dataset} --out {out} {extra}".strip()


def problem_rows(n: int = 5, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "problem": f"What is {10 + i} + {20 + i}?", "answer": str(30 + 2 * i)}
            for i in range(start, start + n)]


def with_problems(rows: list[dict[str, Any]] | None = None, name: str = "problems.jsonl") -> Callable[[Ctx], None]:
    return lambda ctx: ctx.write(name, problem_rows() if rows is None else rows)


def with_file(name: str, content: str | bytes | list[Any]) -> Callable[[Ctx], None]:
    return lambda ctx: ctx.write(name, content)


def steps(*fns: Callable[[Ctx], Any]) -> Callable[[Ctx], None]:
    def run_all(ctx: Ctx) -> None:
        for fn in fns:
            fn(ctx)
    return run_all


def user_folder(rel: str) -> Callable[[Ctx], None]:
    """A folder of the user's, not made by distill."""
    def make(ctx: Ctx) -> None:
        ctx.write(f"{rel}/notes.txt", "my notes, not distill's\n")
        ctx.write(f"{rel}/data/results.csv", "a,b\n1,2\n")
    return make


def record_status(folder: str, allowed: tuple[str | None, ...]) -> Check:
    """``folder/run.json`` must be absent or have one of the ``allowed`` statuses."""
    def check(ctx: Ctx, res: Result) -> str | None:
        path = ctx.path(folder) / "run.json"
        status = json.loads(path.read_text()).get("status") if path.is_file() else None
        return None if status in allowed else f"{folder}/run.json status is {status!r}"
    return check


def no_output(rel: str) -> Check:
    return lambda ctx, res: f"{rel} was created by a refused command" if ctx.path(rel).exists() else None


def shard_rows(ctx: Ctx, folder: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in sorted(ctx.path(folder).glob("shard-*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def check_no_rows(folder: str) -> Check:
    def check(ctx: Ctx, res: Result) -> str | None:
        rows = shard_rows(ctx, folder) if ctx.path(folder).is_dir() else []
        return f"{len(rows)} trace rows written from unusable answers" if rows else None
    return check


def check_all(*checks: Check) -> Check:
    def check(ctx: Ctx, res: Result) -> str | None:
        return next((why for c in checks if (why := c(ctx, res))), None)
    return check


def fake_sft_run(ctx: Ctx, rel: str, student: str) -> None:
    ctx.write(f"{rel}/run.json", json.dumps({"stage": "sft", "status": "complete", "config": {"student": student},
                                              "inputs": {}, "counts": {}}))


def fake_eval(ctx: Ctx, rel: str, model: str, pass1: Any = 0.5) -> None:
    ctx.write(f"{rel}/results.json", json.dumps({"task": "custom", "pass@1": pass1, "n": 2, "num_problems": 3}))
    ctx.write(f"{rel}/run.json", json.dumps({"stage": "eval", "status": "complete", "config": {"model": model},
                                              "inputs": {"model": {"path": model}}}))


COMPLETIONS = [{"id": "q0", "answer": "30", "completions": ["\\boxed{30}", "\\boxed{31}"]},
               {"id": "q1", "answer": "32", "completions": ["\\boxed{32}", "\\boxed{32}"]}]
PIPE_RECIPE = ("nano-task: {train_problems: 5, heldout_problems: 3, warmup_examples: 4}\n"
               "pipeline:\n  out: pipe\n  steps:\n    - {name: task, stage: nano-task, set: {out: \"{out}/task\"}}\n")


def overwrite_cases() -> list[Case]:
    return [
        Case("overwrite-cwd", "filter --traces {TRACES} --out . --overwrite", setup=user_folder("proj"), cwd="proj",
             precious=("proj",), msg=r"current folder"),
        Case("overwrite-parent", "filter --traces {TRACES} --out .. --overwrite", cwd="proj/sub",
             setup=steps(user_folder("proj"), with_file("proj/sub/keep.txt", "x")), precious=("proj",),
             msg=r"parent"),
        Case("overwrite-home", "filter --traces {TRACES} --out {W}/home --overwrite", setup=user_folder("home"),
             env={"HOME": "{W}/home"}, precious=("home",), msg=r"home"),
        Case("overwrite-user-folder", "filter --traces {TRACES} --out mine --overwrite", setup=user_folder("mine"),
             precious=("mine",), msg=r"not made by distill"),
        Case("overwrite-other-command-sft", TINY_SFT + " --dataset {TASK}/warmup --out tr --overwrite",
             setup=lambda ctx: ctx.copy("{TRACES}", "tr"), precious=("tr",), msg=r"generate", heavy=2),
        Case("overwrite-other-command-eval", "eval --completions c.jsonl --out tr --overwrite",
             setup=steps(lambda ctx: ctx.copy("{TRACES}", "tr"), with_file("c.jsonl", COMPLETIONS)),
             precious=("tr",), msg=r"generate"),
        Case("overwrite-other-command-filter", "filter --traces {TRACES} --out task --overwrite",
             setup=lambda ctx: ctx.copy("{TASK}", "task"), precious=("task",), msg=r"nano-task"),
        Case("overwrite-tiny-user-folder", "tiny --out mine --overwrite --layers 1", setup=user_folder("mine"),
             precious=("mine",), msg=r"not made by distill"),
        Case("overwrite-grpo-cwd", GRPO + " --dataset p.jsonl --out . --overwrite", cwd="proj",
             setup=steps(user_folder("proj"), with_problems(name="proj/p.jsonl")), precious=("proj",),
             msg=r"current folder", heavy=2),
        Case("overwrite-generate-user-folder", gen(out="mine", extra="--overwrite"),
             setup=steps(user_folder("mine"), with_file("mine/run.json", '{"my": "own run notes"}\n'),
                         with_problems()),
             precious=("mine",), expect=(0, 2)),
        Case("generate-into-user-folder", gen(out="mine"),
             setup=steps(user_folder("mine"), with_file("mine/run.json", '{"my": "own run notes"}\n'),
                         with_problems()),
             precious=("mine",), expect=(0, 2)),
        Case("tiny-into-user-folder", "tiny --out mine --layers 1", setup=user_folder("mine"), precious=("mine",),
             msg=r"mine"),
        Case("nano-task-into-user-folder", "nano-task --out mine --train-problems 4 --heldout-problems 2 "
             "--warmup-examples 2", setup=steps(user_folder("mine"), with_file("mine/train.jsonl", "my own data\n")),
             precious=("mine",), expect=(0, 2)),
        Case("eval-into-user-folder", "eval --completions c.jsonl --out mine",
             setup=steps(user_folder("mine"), with_file("mine/results.json", "{\"mine\": 1}\n"),
                         with_file("c.jsonl", COMPLETIONS)), precious=("mine",), expect=(0, 2)),
    ]


def out_cases() -> list[Case]:
    proc = "/proc/distill-battery/out"     # unwritable even for root (chmod does not stop root)
    return [
        Case("out-proc-filter", f"filter --traces {{TRACES}} --out {proc} --no-decontaminate", msg=r"/proc"),
        Case("out-proc-eval", f"eval --completions c.jsonl --out {proc}", setup=with_file("c.jsonl", COMPLETIONS),
             msg=r"/proc"),
        Case("out-proc-generate", gen(out=proc), setup=with_problems(), msg=r"/proc"),
        Case("out-under-file-generate", gen(out="afile/sub"), setup=steps(with_problems(), with_file("afile", "x")),
             precious=("afile",), msg=r"afile"),
        Case("out-under-file-tiny", "tiny --out afile/sub --layers 1", setup=with_file("afile", "x"),
             precious=("afile",), msg=r"afile"),
        Case("out-under-file-nano-task", "nano-task --out afile/sub --train-problems 4", setup=with_file("afile", "x"),
             precious=("afile",), msg=r"afile"),
        Case("out-under-file-sft", TINY_SFT + " --dataset {TASK}/warmup --out afile/sub", setup=with_file("afile", "x"),
             precious=("afile",), msg=r"afile", heavy=2),
        Case("out-under-file-card", "card --student qwen-7b --out afile/sub --runs runs", setup=with_file("afile", "x"),
             precious=("afile",), msg=r"afile"),
        Case("out-is-a-file-filter", "filter --traces {TRACES} --out afile", setup=with_file("afile", "x"),
             precious=("afile",), msg=r"afile"),
    ]


def jsonl_cases() -> list[Case]:
    corrupt = "\n".join(json.dumps(r) for r in problem_rows(2)) + '\n{"id": "q9", "problem": "What is\n'
    corrupt += json.dumps(problem_rows(1, 5)[0]) + "\n"

    def corrupt_shard(ctx: Ctx, data: bytes) -> None:
        ctx.copy("{TRACES}", "tr")
        shard = ctx.path("tr/shard-00000-of-00001.jsonl")
        lines = shard.read_bytes().splitlines(keepends=True)
        shard.write_bytes(lines[0] + data + b"".join(lines[1:]))
    return [
        Case("corrupt-line-problems", gen(), setup=with_file("problems.jsonl", corrupt), msg=r"problems\.jsonl:3"),
        Case("corrupt-line-traces", "filter --traces tr --out sftdata --no-decontaminate --workers 1",
             setup=lambda ctx: corrupt_shard(ctx, b'{"id": "train-00001", "sample": 0, "te\n'),
             expect=(0, 2), msg=r"shard-00000-of-00001\.jsonl:2", precious=("tr",)),
        Case("corrupt-line-completions", "eval --completions c.jsonl --out ev",
             setup=with_file("c.jsonl", json.dumps(COMPLETIONS[0]) + "\n{oops\n"), msg=r"c\.jsonl:2"),
        Case("corrupt-line-sft-data", TINY_SFT + " --dataset d.jsonl --out st",
             setup=with_file("d.jsonl", '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", '
                             '"content": "yo"}]}\n{"messages": [\n'), msg=r"d\.jsonl:2", heavy=2),
        Case("corrupt-line-grpo-data", GRPO + " --dataset p.jsonl --out g",
             setup=with_file("p.jsonl", corrupt), msg=r"p\.jsonl:3", heavy=2),
        Case("corrupt-line-eval-data", "eval --task custom --completions c.jsonl --data-file d.jsonl --out ev",
             setup=steps(with_file("c.jsonl", COMPLETIONS), with_file("d.jsonl", corrupt)), msg=r"d\.jsonl:3"),
        Case("corrupt-line-decontaminate", "filter --traces {TRACES} --out sftdata --decontaminate-files d.jsonl",
             setup=with_file("d.jsonl", corrupt), msg=r"d\.jsonl:3", check=no_output("sftdata/run.json")),
        Case("not-utf8-problems", gen(), setup=with_file("problems.jsonl", json.dumps(problem_rows(1)[0]).encode()
                                                          + b'\n{"problem": "caf\xe9 + 1", "answer": "2"}\n'),
             msg=r"problems\.jsonl:2.*UTF-8"),
        Case("not-utf8-problems-csv", gen(dataset="p.csv"),
             setup=with_file("p.csv", b"problem,answer\nWhat is 1 + 1?,2\ncaf\xe9,3\n"), msg=r"p\.csv.*UTF-8"),
        Case("not-utf8-traces", "filter --traces tr --out sftdata --no-decontaminate --workers 1",
             setup=lambda ctx: corrupt_shard(ctx, b'{"id": "x\xff\xfe", "sample": 0}\n'), expect=(0, 2),
             msg=r"shard-00000-of-00001\.jsonl:2", precious=("tr",)),
        Case("not-utf8-decontaminate", "filter --traces {TRACES} --out sftdata --decontaminate-files d.jsonl",
             setup=with_file("d.jsonl", b'{"problem": "caf\xe9"}\n'), msg=r"d\.jsonl.*UTF-8"),
        Case("not-utf8-completions", "eval --completions c.jsonl --out ev",
             setup=with_file("c.jsonl", b'{"id": "q\xff", "answer": "1", "completions": ["1"]}\n'),
             msg=r"c\.jsonl"),
        Case("not-utf8-recipe", "generate --recipe r.yaml", setup=with_file("r.yaml", b"generate:\n  teacher: caf\xe9\n"),
             msg=r"r\.yaml"),
        Case("fake-parquet-problems", gen(dataset="p.parquet"), setup=with_file("p.parquet", "not parquet\n"),
             msg=r"p\.parquet"),
        Case("fake-parquet-sft", TINY_SFT + " --dataset d.parquet --out st", setup=with_file("d.parquet", "PAR1 no\n"),
             msg=r"d\.parquet", heavy=2),
        Case("fake-parquet-eval-data", "eval --task custom --completions c.jsonl --data-file d.parquet --out ev",
             setup=steps(with_file("c.jsonl", COMPLETIONS), with_file("d.parquet", "nope")), msg=r"d\.parquet"),
        Case("fake-parquet-decontaminate", "filter --traces {TRACES} --out sftdata --decontaminate-files d.parquet",
             setup=with_file("d.parquet", "nope"), msg=r"d\.parquet"),
    ]


def recipe_cases() -> list[Case]:
    return [
        Case("recipe-nan-temperature", "generate --recipe r.yaml", setup=with_file("r.yaml", "generate:\n  "
             "temperature: .nan\n"), msg=r"temperature"),
        Case("recipe-inf-top-p", "eval --recipe r.yaml --completions c.jsonl",
             setup=with_file("r.yaml", "eval:\n  top_p: .inf\n"), msg=r"top_p"),
        Case("recipe-unknown-key", "filter --recipe r.yaml --traces {TRACES}",
             setup=with_file("r.yaml", "filter:\n  max_tokenz: 5\n"), msg=r"max_tokenz"),
        Case("recipe-unknown-section", "filter --recipe r.yaml --traces {TRACES}",
             setup=with_file("r.yaml", "filtre:\n  max_tokens: 5\n"), msg=r"filtre"),
        Case("recipe-missing", "sft --recipe no/such.yaml --dataset x", msg=r"no/such\.yaml"),
        Case("recipe-include-cycle", "tiny --recipe a.yaml",
             setup=steps(with_file("a.yaml", "include: b.yaml\ntiny: {layers: 1}\n"), with_file("b.yaml", "include: a.yaml\n")),
             msg=r"include"),
        Case("recipe-is-a-list", "tiny --recipe r.yaml", setup=with_file("r.yaml", "- tiny\n- layers\n"), msg=r"r\.yaml"),
        Case("recipe-bad-yaml", "tiny --recipe r.yaml", setup=with_file("r.yaml", "tiny: {layers: 1\n"), msg=r"r\.yaml"),
        Case("recipe-section-not-mapping", "tiny --recipe r.yaml", setup=with_file("r.yaml", "tiny: 3\n"), msg=r"tiny"),
        Case("recipe-wrong-type", "generate --recipe r.yaml", setup=with_file("r.yaml", "generate:\n  num_samples: [1, 2]\n"),
             msg=r"num_samples"),
        Case("set-without-equals", "tiny --set tiny.layers", msg=r"KEY=VALUE"),
        Case("set-unknown-key", "tiny --set tiny.layerz=2", msg=r"layerz"),
        Case("set-unknown-section", "tiny --set tinny.layers=2", msg=r"tinny"),
        Case("set-bad-type", "generate --set generate.num_samples=abc", msg=r"num_samples"),
        Case("flag-bad-int", "tiny --layers two", msg=r"layers"),
        Case("flag-bad-choice", "generate --template fancy", msg=r"template"),
        Case("flag-unknown", "filter --tracez x", msg=r"tracez"),
        Case("command-unknown", "distil --help", msg=r"distil"),
    ]


def pipeline_cases() -> list[Case]:
    return [
        Case("pipeline-corrupt-state", "pipeline --recipe r.yaml",
             setup=steps(with_file("r.yaml", PIPE_RECIPE), with_file("pipe/pipeline.json", '{"steps": {"task": ')),
             precious=("pipe/pipeline.json",), msg=r"pipeline\.json"),
        Case("pipeline-state-wrong-shape", "pipeline --recipe r.yaml",
             setup=steps(with_file("r.yaml", PIPE_RECIPE), with_file("pipe/pipeline.json", '["task"]\n')),
             precious=("pipe/pipeline.json",), msg=r"pipeline\.json"),
        Case("pipeline-no-recipe", "pipeline", msg=r"recipe"),
        Case("pipeline-unknown-from", "pipeline --recipe r.yaml --from nosuchstep",
             setup=with_file("r.yaml", PIPE_RECIPE), msg=r"nosuchstep"),
        Case("pipeline-unknown-stage", "pipeline --recipe r.yaml",
             setup=with_file("r.yaml", "pipeline:\n  out: pipe\n  steps:\n    - {name: a, stage: nosuchstage}\n"),
             msg=r"nosuchstage"),
    ]


def eval_cases() -> list[Case]:
    ev = ("eval --task custom --data-file {TASK}/heldout.jsonl --model {MODEL} --backend hf --samples 2 "
          "--max-tokens 8 --limit 4 --chunk-completions 4 --verify-workers 0 --out ev")

    def truncate_chunk(ctx: Ctx) -> None:
        ctx.run(ev, timeout=400)
        chunk = ctx.path("ev/lm_eval/chunk-00001.samples.jsonl")
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])

    def whole_results(ctx: Ctx, res: Result) -> str | None:
        if res.rc != 0:
            return None
        results = json.loads(ctx.path("ev/results.json").read_text())
        if results.get("num_problems") != 4 or not results.get("complete"):
            return f"results.json after a truncated chunk: {results.get('num_problems')} problems, " \
                   f"complete={results.get('complete')}"
        return None
    return [
        Case("eval-truncated-chunk", ev, setup=truncate_chunk, expect=(0, 2), check=whole_results, heavy=5,
             timeout=400),
        Case("eval-unknown-task", "eval --task aime23 --completions c.jsonl", setup=with_file("c.jsonl", COMPLETIONS),
             msg=r"aime23"),
        Case("eval-no-model", "eval --task aime24 --out ev", msg=r"--model|--completions"),
        Case("eval-custom-no-data", "eval --task custom --model {MODEL} --out ev", msg=r"--data-file"),
        Case("eval-negative-samples", "eval --completions c.jsonl --samples -1 --out ev",
             setup=with_file("c.jsonl", COMPLETIONS), msg=r"samples"),
        Case("eval-unknown-ids", "eval --task custom --completions c.jsonl --data-file d.jsonl --out ev",
             setup=steps(with_file("c.jsonl", COMPLETIONS), with_file("d.jsonl", problem_rows(2, 5))), msg=r"q0"),
        Case("eval-empty-model-folder", "eval --task custom --data-file {TASK}/heldout.jsonl --model empty --backend hf "
             "--samples 2 --max-tokens 8 --out ev", setup=lambda ctx: ctx.path("empty").mkdir(), msg=r"empty",
             heavy=3),
        Case("eval-missing-model-path", "eval --task custom --data-file {TASK}/heldout.jsonl --model ./no/such/model "
             "--backend hf --samples 2 --out ev", msg=r"no/such/model", check=not_hub_id_complaint, heavy=3),
        Case("eval-completions-missing", "eval --completions nope.jsonl --out ev", msg=r"nope\.jsonl"),
        Case("eval-completions-not-list", "eval --completions c.jsonl --out ev",
             setup=with_file("c.jsonl", [{"id": "q0", "answer": "1", "completions": "\\boxed{1}"}]), msg=r"c\.jsonl:1"),
    ]


def not_hub_id_complaint(ctx: Ctx, res: Result) -> str | None:
    if re.search(r"repo.?id|hub id|huggingface\.co|Repo id must", res.text, re.I):
        return "a missing local path was reported as a hub id problem"
    return None


def card_cases() -> list[Case]:
    return [
        Case("card-non-numeric-results", "card --student tiny-qwen --sft-dir run --eval-dir ev --out cards",
             setup=lambda ctx: (fake_sft_run(ctx, "run", "tiny-qwen"), fake_eval(ctx, "ev", "{W}/run", "high")),
             msg=r"results\.json", check=no_output("cards/tiny-qwen.md")),
        Case("card-run-json-list", "card --student tiny-qwen --sft-dir run --out cards",
             setup=with_file("run/run.json", '[{"stage": "sft"}]\n'), msg=r"run\.json|run",
             check=no_output("cards/tiny-qwen.md")),
        Case("card-other-student", "card --student qwen-7b --sft-dir tinyrun --eval-dir unrelated --out cards",
             setup=lambda ctx: (fake_sft_run(ctx, "tinyrun", "tiny-qwen"), fake_eval(ctx, "unrelated", "/elsewhere/m")),
             msg=r"tiny-qwen", check=no_output("cards/qwen-7b.md")),
        Case("card-unrelated-eval", "card --student tiny-qwen --sft-dir tinyrun --eval-dir unrelated --out cards",
             setup=lambda ctx: (fake_sft_run(ctx, "tinyrun", "tiny-qwen"), fake_eval(ctx, "unrelated", "/elsewhere/m")),
             msg=r"unrelated|elsewhere", check=no_output("cards/tiny-qwen.md")),
        Case("card-unknown-student", "card --student qwen-8b --out cards", msg=r"qwen-8b"),
        Case("card-no-student", "card --out cards", msg=r"--student"),
        Case("card-results-not-json", "card --student tiny-qwen --sft-dir run --eval-dir ev --out cards",
             setup=lambda ctx: (fake_sft_run(ctx, "run", "tiny-qwen"), fake_eval(ctx, "ev", "{W}/run"),
                                ctx.write("ev/results.json", "{truncated")), msg=r"results\.json"),
        Case("card-sft-dir-missing", "card --student tiny-qwen --sft-dir no/such/run --out cards", msg=r"no/such/run",
             check=no_output("cards/tiny-qwen.md")),
    ]


def model_cases() -> list[Case]:
    hf = "generate --engine hf --dataset problems.jsonl --max-tokens 8 --num-samples 1 --verify-workers 0 --out tr"
    return [
        Case("model-empty-folder-generate", hf + " --teacher empty",
             setup=steps(with_problems(), lambda ctx: ctx.path("empty").mkdir()), msg=r"empty", heavy=3,
             check=check_all(not_hub_id_complaint, record_status("tr", (None, "failed")))),
        Case("model-missing-path-generate", hf + " --teacher ./no/such/model", setup=with_problems(),
             msg=r"no/such/model", check=not_hub_id_complaint, heavy=3),
        Case("model-hub-id-offline", hf + " --teacher someorg/some-model-7b", setup=with_problems(),
             msg=r"someorg/some-model-7b", heavy=3),
        Case("model-empty-folder-sft", "sft --student tiny-qwen --model empty --dataset {TASK}/warmup --out st",
             setup=lambda ctx: ctx.path("empty").mkdir(), msg=r"empty", heavy=3, check=no_output("st/run.json")),
        Case("model-missing-path-grpo", GRPO.replace("{MODEL}", "./no/such/model") + " --dataset p.jsonl --out g",
             setup=with_problems(name="p.jsonl"), msg=r"no/such/model", check=not_hub_id_complaint, heavy=3),
        Case("tokenizer-missing-path-filter", "filter --traces {TRACES} --out sftdata --no-decontaminate "
             "--tokenizer ./no/such/tok", msg=r"no/such/tok", check=not_hub_id_complaint, heavy=1),
        Case("sft-tiny-without-model", "sft --student tiny-qwen --dataset {TASK}/warmup --out st", msg=r"--model"),
        Case("sft-unknown-student", "sft --student qwen-9b --dataset {TASK}/warmup --out st", msg=r"qwen-9b"),
    ]


def problem_cases() -> list[Case]:
    rows = problem_rows()
    missing = [dict(r) for r in rows]
    missing[2].pop("answer")
    as_list = [dict(r) for r in rows]
    as_list[1]["answer"] = [1, 2]
    as_bool = [dict(r) for r in rows]
    as_bool[3]["answer"] = True
    dup = [*rows, dict(rows[1], problem="What is 1 + 1?")]

    def says_row_3(ctx: Ctx, res: Result) -> str | None:
        return None if re.search(r"problems\.jsonl:3", res.text) else "the row without an answer is not named"
    return [
        Case("problems-missing-answer", gen(), setup=with_problems(missing), expect=(0,), check=says_row_3),
        Case("problems-answer-list", gen(), setup=with_problems(as_list), msg=r"problems\.jsonl:2.*list"),
        Case("problems-answer-bool", gen(), setup=with_problems(as_bool), msg=r"problems\.jsonl:4.*bool"),
        Case("problems-duplicate-ids", gen(), setup=with_problems(dup), msg=r"duplicate.*q1"),
        Case("problems-no-problem-column", gen(extra="--problem-column question"), setup=with_problems(),
             msg=r"question", check=lambda ctx, res: "an internal column is listed" if "__" in res.error_message() else None),
        Case("problems-empty-text", gen(), setup=with_problems([*rows[:2], {"id": "z", "problem": " ", "answer": "1"}]),
             msg=r"problems\.jsonl:3"),
        Case("problems-empty-file", gen(), setup=with_file("problems.jsonl", ""), msg=r"problems\.jsonl"),
        Case("problems-missing-file", gen(dataset="nope.jsonl"), msg=r"nope\.jsonl"),
        Case("problems-folder-not-dataset", gen(dataset="folder"),
             setup=with_file("folder/readme.txt", "not a dataset"), msg=r"folder", heavy=1),
        Case("problems-hub-id-offline", gen(dataset="someorg/some-dataset"), msg=r"someorg/some-dataset", heavy=1),
        Case("problems-unsupported-suffix", gen(dataset="p.txt"), setup=with_file("p.txt", "What is 1 + 1?"),
             msg=r"p\.txt"),
        Case("problems-bad-aime-gold", gen(extra="--verify-mode aime"),
             setup=with_problems([dict(rows[0], answer="x + 1")]), msg=r"q0"),
        Case("problems-json-not-list", gen(dataset="p.json"), setup=with_file("p.json", '{"a": 1, "b": 2}'),
             msg=r"p\.json"),
    ]


def server_cases() -> list[Case]:
    token = "sk-proj-" + hashlib.sha256(b"battery-token").hexdigest()[:40]

    def changed_golds(ctx: Ctx) -> None:
        with_problems()(ctx)
        ctx.run(gen())
        rows = problem_rows()
        rows[1]["answer"] = "999"
        ctx.write("problems.jsonl", rows)

    def not_silent(ctx: Ctx, res: Result) -> str | None:
        return "said 'nothing to do' after the golds changed" if res.rc == 0 and "nothing to do" in res.text else None

    def two_shards(ctx: Ctx) -> None:
        with_problems(problem_rows(8))(ctx)
        ctx.run(gen(extra="--num-shards 2 --shard-index 0"))
        ctx.run(gen(extra="--num-shards 2 --shard-index 1"))

    def token_counts_ok(ctx: Ctx, res: Result) -> str | None:
        rows = shard_rows(ctx, "traces")
        if len(rows) != 10:
            return f"{len(rows)} rows written, 10 expected"
        bad = [r.get("completion_tokens") for r in rows if r.get("completion_tokens") is not None
               and not isinstance(r.get("completion_tokens"), int)]
        return f"token counts that are not integers: {bad[:2]}" if bad else None
    failed = record_status("traces", (None, "failed", "partial"))
    return [
        Case("server-400-everything", gen("bad400"), setup=with_problems(), expect=(2,), msg=r"400",
             check=check_all(failed, check_no_rows("traces"))),
        Case("server-null-content", gen("null"), setup=with_problems(), expect=(2,), msg=r"null",
             check=check_all(failed, check_no_rows("traces"))),
        Case("server-int-content", gen("int"), setup=with_problems(), expect=(2,), msg=r"not text",
             check=check_all(failed, check_no_rows("traces"))),
        Case("server-no-choices", gen("nochoices"), setup=with_problems(), expect=(2,), msg=r"no choices",
             check=check_all(failed, check_no_rows("traces"))),
        Case("server-string-usage", gen("strusage"), setup=with_problems(), expect=(0,), check=token_counts_ok),
        Case("server-401-echoes-key", gen("echo401"), setup=with_problems(), expect=(2,), msg=r"401",
             check=failed),
        Case("server-quotes-key", gen("quote"), setup=with_problems(), expect=(0,)),
        Case("server-not-json", gen("notjson"), setup=with_problems(), expect=(2,), msg=r"not JSON", check=failed),
        Case("server-500-no-retries", gen("err500"), setup=with_problems(), expect=(2,), msg=r"500", check=failed),
        Case("server-connection-refused", gen().replace("{URL}", f"http://127.0.0.1:{closed_port()}"),
             setup=with_problems(), expect=(2,), msg=r"connect", check=failed),
        Case("api-key-env-is-a-token", gen(extra=f"--api-key-env {token}"), setup=with_problems(), secrets=(token,),
             msg=r"api-key-env", check=no_output("traces")),
        Case("base-url-not-a-url", gen().replace("{URL}/good/v1", "localhost-8000"), setup=with_problems(),
             msg=r"base-url"),
        Case("golds-edited-then-rerun", gen(), setup=changed_golds, expect=(0, 2), check=not_silent,
             precious=("traces",)),
        Case("shard-overwritten-other-settings", gen(extra="--num-shards 2 --shard-index 1 --overwrite "
                                                   "--temperature 0.9"),
             setup=two_shards, precious=("traces/shard-00000-of-00002.jsonl", "traces/shard-00001-of-00002.jsonl"),
             msg=r"other settings"),
        Case("rerun-other-settings", gen(extra="--temperature 0.9"),
             setup=lambda ctx: (with_problems()(ctx), ctx.run(gen())), precious=("traces",), msg=r"temperature"),
        Case("generate-bad-shard-index", gen(extra="--num-shards 2 --shard-index 2"), setup=with_problems(),
             msg=r"shard", check=no_output("traces")),
        Case("generate-zero-samples", gen(extra="--num-samples 0"), setup=with_problems(), msg=r"num.samples",
             check=no_output("traces")),
        Case("generate-negative-max-tokens", gen(extra="--max-tokens -5"), setup=with_problems(), msg=r"max.tokens",
             check=no_output("traces")),
        Case("generate-negative-temperature", gen(extra="--temperature -1"), setup=with_problems(),
             msg=r"temperature", check=no_output("traces")),
        Case("generate-negative-limit", gen(extra="--limit -1"), setup=with_problems(), msg=r"limit",
             check=no_output("traces")),
        Case("generate-bad-engine", gen().replace("--engine openai", "--engine tgi"), setup=with_problems(),
             msg=r"engine"),
        Case("generate-no-teacher", gen().replace("--teacher served", ""), setup=with_problems(), msg=r"teacher"),
    ]


def filter_sft_grpo_cases() -> list[Case]:
    def empty_filter(ctx: Ctx) -> None:
        with_problems()(ctx)
        ctx.run(gen("wrong"))
        ctx.run("filter --traces traces --out empty --no-decontaminate --workers 1", expect=(2,))
    return [
        Case("filter-no-traces-in-folder", "filter --traces tr --out sftdata", setup=user_folder("tr"),
             msg=r"tr", check=no_output("sftdata/run.json")),
        Case("filter-traces-missing", "filter --traces no/such --out sftdata", msg=r"no/such"),
        Case("filter-no-traces-flag", "filter --out sftdata", msg=r"--traces"),
        Case("filter-everything-dropped", "filter --traces traces --out sftdata --no-decontaminate --workers 1",
             setup=lambda ctx: (with_problems()(ctx), ctx.run(gen("wrong"))),
             check=record_status("sftdata", (None, "empty", "failed")), msg=r"no trace passed"),
        Case("sft-on-empty-filter-output", TINY_SFT + " --dataset empty --out st", setup=empty_filter,
             msg=r"empty", check=no_output("st/run.json"), heavy=3),
        Case("filter-bad-select", "filter --traces {TRACES} --out sftdata --select longest", msg=r"select"),
        Case("filter-bad-validation-fraction", "filter --traces {TRACES} --out sftdata --validation-fraction 1.5",
             msg=r"validation.fraction"),
        Case("filter-zero-max-tokens", "filter --traces {TRACES} --out sftdata --max-tokens 0", msg=r"max.tokens"),
        Case("sft-no-dataset", "sft --student tiny-qwen --model {MODEL} --out st", msg=r"--dataset"),
        Case("sft-no-messages-column", TINY_SFT + " --dataset d.jsonl --out st",
             setup=with_problems(name="d.jsonl"), msg=r"messages", heavy=2),
        Case("sft-negative-learning-rate", TINY_SFT + " --dataset {TASK}/warmup --learning-rate -1 --out st",
             msg=r"learning.rate"),
        Case("sft-dataset-missing", TINY_SFT + " --dataset no/such.jsonl --out st", msg=r"no/such", heavy=2),
        Case("grpo-fewer-problems-than-a-batch", GRPO + " --dataset p.jsonl --out g",
             setup=with_problems(problem_rows(1), name="p.jsonl"), msg=r"batch|problem|step",
             check=record_status("g", (None, "failed", "partial", "empty")), heavy=6, timeout=400),
        Case("grpo-one-generation", GRPO.replace("--num-generations 2", "--num-generations 1") + " --dataset p.jsonl "
             "--out g", setup=with_problems(), msg=r"num.generations"),
        Case("grpo-batch-not-divisible", GRPO.replace("--per-device-train-batch-size 4",
                                                      "--per-device-train-batch-size 3") + " --dataset p.jsonl --out g",
             setup=with_problems(), msg=r"batch"),
        Case("grpo-dataset-missing", GRPO + " --dataset no/such.jsonl --out g", msg=r"no/such", heavy=1),
    ]


def small_cases() -> list[Case]:
    return [
        Case("tiny-zero-layers", "tiny --layers 0 --out m", msg=r"layers", check=no_output("m")),
        Case("tiny-heads-mismatch", "tiny --hidden 100 --heads 3 --out m", msg=r"heads", check=no_output("m")),
        Case("tiny-bad-arch", "tiny --arch gpt2 --out m", msg=r"arch|gpt2"),
        Case("tiny-negative-vocab", "tiny --vocab-size -5 --out m", msg=r"vocab", check=no_output("m")),
        Case("nano-task-negative-problems", "nano-task --train-problems -1 --out t", msg=r"train.problems",
             check=no_output("t")),
        Case("nano-task-min-above-max", "nano-task --min-value 500 --max-value 10 --out t", msg=r"value",
             check=no_output("t")),
        Case("nano-task-too-many-problems", "nano-task --min-value 10 --max-value 12 --train-problems 100 --out t",
             msg=r"problems", check=no_output("t/run.json")),
    ]


def all_cases() -> list[Case]:
    return [*overwrite_cases(), *out_cases(), *jsonl_cases(), *recipe_cases(), *pipeline_cases(), *eval_cases(),
            *card_cases(), *model_cases(), *problem_cases(), *server_cases(), *filter_sft_grpo_cases(),
            *small_cases()]


# ============================================================================================ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", dest="pattern", help="only the cases whose name matches this regular expression")
    ap.add_argument("-j", "--jobs", type=int, default=3, help="cases run at once (default: 3)")
    ap.add_argument("--list", action="store_true", help="list the cases and their commands, run nothing")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--verbose", action="store_true", help="print every reason of every case that is not ok")
    args = ap.parse_args()
    cases = [c for c in all_cases() if not args.pattern or re.search(args.pattern, c.name)]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    if args.list:
        for c in cases:
            print(f"{c.name:34} distill {c.argv if isinstance(c.argv, str) else ' '.join(c.argv)}")
        print(f"{len(cases)} cases")
        return 0
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="distill-battery-"))
    server, url = start_server()
    try:
        fx = make_fixtures(root, url)
        fx_before = snapshot([fx["FIXTURES"]])
        print(f"fixtures ready in {time.perf_counter() - t0:.0f} s; running {len(cases)} cases, {args.jobs} at a time",
              flush=True)
        order = sorted(cases, key=lambda c: -c.heavy)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            outcomes = {o.case.name: o for o in pool.map(lambda c: run_case(c, root, fx, url), order)}
        fixture_loss = lost(fx_before, snapshot([fx["FIXTURES"]]))
    finally:
        server.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return report([outcomes[n] for n in names], fixture_loss, time.perf_counter() - t0,
                  root if args.keep else None, args.verbose)


def report(outcomes: list[Outcome], fixture_loss: list[str], wall: float, kept: Path | None, verbose: bool) -> int:
    width = max(len(o.case.name) for o in outcomes)
    print(f"\n{'case':{width}}  {'exit':>4}  {'secs':>5}  verdict / result / command")
    for o in outcomes:
        rc = "-" if o.rc is None else str(o.rc)
        print(f"{o.case.name:{width}}  {rc:>4}  {o.seconds:5.1f}  {o.verdict.upper() if o.verdict != 'ok' else 'ok'}"
              f" | {o.line[:160]}")
        cmd = o.case.argv if isinstance(o.case.argv, str) else " ".join(o.case.argv)
        print(f"{'':{width}}              distill {cmd[:150]}")
        if o.verdict != "ok" or verbose:
            for cat, reasons in o.problems.items():
                for r in reasons:
                    print(f"{'':{width}}              - {cat}: {r[:300]}")
    counts = {cat: sum(bool(o.problems[cat]) for o in outcomes) for cat in ("traceback", "data lost", "silently wrong")}
    if fixture_loss:
        counts["data lost"] += 1
        print(f"shared fixtures changed by some case: {', '.join(fixture_loss[:5])}")
    ok = sum(o.verdict == "ok" for o in outcomes)
    multiline = [o.case.name for o in outcomes if o.multiline]
    if multiline:
        print(f"errors that go on over several lines (not counted): {len(multiline)}: {', '.join(multiline)}")
    print(f"\n{len(outcomes)} cases in {wall:.0f} s" + (f"; work folder kept: {kept}" if kept else ""))
    print(f"tracebacks: {counts['traceback']}, data lost: {counts['data lost']}, "
          f"silently wrong: {counts['silently wrong']}, ok: {ok}")
    return 0 if not any(counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
