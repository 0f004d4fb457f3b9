"""``distill generate`` end to end with the hf engine on a tiny model: every field, resume, refusal of mixed
settings, half-written lines, sharding, clear data errors, and a run killed with SIGKILL then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from distill.cli import main
from distill.data.traces import TRACE_FIELDS, iter_traces
from distill.engines import Completion
from distill.verify import STATUSES

SHARD = "shard-00000-of-00001.jsonl"


def write_problems(path: Path, n: int, *, start: int = 0) -> Path:
    with path.open("w") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)}) + "\n")
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def gen(teacher: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--engine", "hf", "--teacher", str(teacher), "--dataset", str(data), "--out", str(out),
                 "--max-tokens", "16", "--verify-workers", "0", *extra])


@pytest.fixture
def problems(tmp_path: Path) -> Path:
    return write_problems(tmp_path / "problems.jsonl", 6)


# ------------------------------------------------------------------------------------------ the basic run
def test_writes_n_rows_per_problem_with_every_field(tiny_qwen, problems, tmp_path, capsys):
    out = tmp_path / "traces"
    assert gen(tiny_qwen, problems, out, "--num-samples", "4", "--chunk-size", "4", "--batch-size", "4") == 0
    printed = capsys.readouterr().out
    rows = rows_of(out / SHARD)
    assert len(rows) == 24
    assert Counter(r["id"] for r in rows) == {f"q{i}": 4 for i in range(6)}
    assert {(r["id"], r["sample"]) for r in rows} == {(f"q{i}", s) for i in range(6) for s in range(4)}
    for r in rows:
        assert list(r) == list(TRACE_FIELDS)            # every field, id and sample first
        assert r["problem"].startswith("What is") and r["prompt"].endswith("<|assistant|>")
        assert "Please reason step by step" in r["prompt"]
        assert isinstance(r["completion"], str)
        assert r["gold"] == str(2 * int(r["id"][1:]) + 1)
        assert r["verdict"] in STATUSES
        assert isinstance(r["prompt_tokens"], int) and r["prompt_tokens"] > 10
        assert isinstance(r["completion_tokens"], int) and 1 <= r["completion_tokens"] <= 16
        assert r["finish_reason"] in ("stop", "length")
        assert r["teacher"] == str(tiny_qwen) and r["engine"] == "hf"
        assert r["sampling"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 16, "num_samples": 4}
        assert isinstance(r["seed"], int)
        if r["answer_text"] is None:                   # an unclosed <think>: no answer, verdict says so
            assert r["verdict"] == "unfinished" and r["final_answer"] is None
    run = json.loads((out / "run.json").read_text())
    assert run["stage"] == "generate" and run["status"] == "complete" and run["engine"] == "hf"
    counts = run["counts"]
    assert counts["completions_written"] == 24 and counts["problems_finished"] == 6
    assert counts["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert sum(counts["finish_reasons"].values()) == 24 and counts["verified"] == 24
    assert run["inputs"]["dataset"]["sha256"] and run["inputs"]["teacher"]["path"] == str(tiny_qwen)
    assert "6 problems, 24 completions written" in printed and "finish reasons:" in printed
    assert "pass rate" in printed
    settings = json.loads((out / "generate-settings.json").read_text())
    assert settings["temperature"] == 0.6 and settings["num_shards"] == 1 and settings["prompt_form"] == "text"


def test_rerun_skips_written_pairs_and_more_samples_extend(tiny_qwen, problems, tmp_path, capsys, monkeypatch):
    out = tmp_path / "traces"
    assert gen(tiny_qwen, problems, out, "--num-samples", "2") == 0
    before = (out / SHARD).read_bytes()
    monkeypatch.chdir(tmp_path)                       # the same files, named relative to another folder
    assert gen(tiny_qwen, Path("problems.jsonl"), Path("traces"), "--num-samples", "2") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / SHARD).read_bytes() == before
    assert gen(tiny_qwen, problems, out, "--num-samples", "3") == 0
    rows = rows_of(out / SHARD)
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"q{i}", s): 1 for i in range(6) for s in range(3)}
    assert (out / SHARD).read_bytes().startswith(before)  # appended, nothing rewritten
    assert "6 problems, 6 completions written (12 were already there)" in capsys.readouterr().out


def test_other_sampling_settings_are_refused_unless_overwrite(tiny_qwen, problems, tmp_path, capsys):
    out = tmp_path / "traces"
    assert gen(tiny_qwen, problems, out, "--num-samples", "1") == 0
    capsys.readouterr()
    assert gen(tiny_qwen, problems, out, "--num-samples", "1", "--temperature", "0.9") == 2
    err = capsys.readouterr().err
    assert "temperature: 0.6 in the folder, 0.9 now" in err and "--overwrite" in err
    assert gen(tiny_qwen, problems, out, "--num-samples", "1", "--seed", "7") == 2
    assert gen(tiny_qwen, problems, out, "--num-samples", "1", "--temperature", "0.9", "--overwrite") == 0
    rows = rows_of(out / SHARD)
    assert len(rows) == 6 and {r["sampling"]["temperature"] for r in rows} == {0.9}


def test_a_half_written_line_is_never_data_and_is_regenerated(tiny_qwen, problems, tmp_path):
    out = tmp_path / "traces"
    assert gen(tiny_qwen, problems, out, "--num-samples", "2") == 0
    shard = out / SHARD
    lines = shard.read_text().splitlines(keepends=True)
    # As if killed in the middle of a write: the last two rows gone, a fragment of the next one left behind.
    shard.write_text("".join(lines[:-2]) + lines[-2][:37])
    from distill.data.jsonl import ReadReport

    report = ReadReport()
    assert len(list(iter_traces(out, report))) == 10 and len(report.bad) == 1
    assert "partial last line" in report.bad[0].reason
    assert gen(tiny_qwen, problems, out, "--num-samples", "2") == 0
    rows = rows_of(shard)                              # every line parses
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"q{i}", s): 1 for i in range(6) for s in range(2)}


def test_no_gold_column_means_no_verdicts(tiny_qwen, tmp_path):
    data = tmp_path / "nogold.csv"
    data.write_text("uid,question\na1,What is 1 + 1?\na2,What is 2 + 2?\n")
    out = tmp_path / "traces"
    assert gen(tiny_qwen, data, out, "--num-samples", "1", "--answer-column", "", "--problem-column", "question",
               "--id-column", "uid") == 0
    rows = rows_of(out / SHARD)
    assert [r["id"] for r in rows] == ["a1", "a2"]
    assert all(r["gold"] is None and r["verdict"] is None for r in rows)


def test_r1_zero_template_with_force_think(tiny_qwen, problems, tmp_path):
    out = tmp_path / "traces"
    assert gen(tiny_qwen, problems, out, "--num-samples", "1", "--template", "r1-zero", "--force-think",
               "--limit", "2") == 0
    rows = rows_of(out / SHARD)
    assert len(rows) == 2
    for r in rows:
        assert r["prompt"].startswith("A conversation between User and Assistant.")
        assert r["prompt"].endswith("Assistant: <think>")
        # The prompt opened <think>: a completion without </think> is unfinished reasoning, not an answer.
        if "</think>" not in r["completion"]:
            assert r["answer_text"] is None and r["verdict"] == "unfinished"


# ------------------------------------------------------------------------------------------ rows, unit level
def test_rows_split_reasoning_and_get_verdicts(tmp_path):
    from distill.data.problems import Problem
    from distill.stages.generate.config import GenerateConfig
    from distill.stages.generate.plan import Job
    from distill.stages.generate.rows import build_rows, finalize, verify_rows

    cfg = GenerateConfig(teacher="t", dataset="d", verify_workers=0)
    job = Job(Problem("p", "What is 2 + 3?", "5", "d"), start=2, prompt="PROMPT", prompt_has_think=False)
    completions = [
        Completion("<think>2 + 3 = 5</think>\nSo $\\boxed{5}$.", None, "stop", 9, 12, 40),
        Completion("<think>2 + 3 = 6</think> \\boxed{6}", None, "stop", 9, 10, 41),
        Completion("<think>2 + 3 is", None, "length", 9, 4, 42),
        Completion("<think>\nhmm\n</think>\n\n\\boxed{5}", "hmm", "stop", 9, 8, 43),
    ]
    rows = build_rows(cfg, "hf", job, completions)
    verify_rows(cfg, rows)
    rows = finalize(rows)
    assert [r["sample"] for r in rows] == [2, 3, 4, 5]
    assert [r["verdict"] for r in rows] == ["correct", "incorrect", "unfinished", "correct"]
    assert [r["final_answer"] for r in rows] == ["5", "6", None, "5"]
    assert rows[0]["reasoning"] == "2 + 3 = 5" and rows[0]["answer_text"] == "So $\\boxed{5}$."
    assert rows[2]["reasoning"] == "2 + 3 is" and rows[2]["answer_text"] is None
    assert rows[3]["reasoning"] == "hmm"
    assert [r["seed"] for r in rows] == [40, 41, 42, 43]
    # With a prompt that opened <think>, the completion starts inside the reasoning.
    job2 = Job(Problem("p", "What is 2 + 3?", "5", "d"), 0, "...<think>\n", prompt_has_think=True)
    rows2 = build_rows(cfg, "hf", job2, [Completion("2 + 3 = 5\n</think>\n\\boxed{5}", None, "stop", 9, 9),
                                         Completion("2 + 3 = 5 \\boxed{5}", None, "length", 9, 9)])
    verify_rows(cfg, rows2)
    assert [(r["reasoning"], r["verdict"]) for r in rows2] == [("2 + 3 = 5", "correct"), ("2 + 3 = 5 \\boxed{5}",
                                                                                          "unfinished")]


def test_scan_done_reads_keys_of_any_row(tmp_path):
    from distill.data.jsonl import ShardWriter
    from distill.data.shards import scan_done
    from distill.stages.generate.plan import missing_runs

    path = tmp_path / "shard-00000-of-00001.jsonl"
    ids = ['plain', 'with "quotes"', "back\\slash", "ünïcode ∑", "comma, \"sample\": 9,"]
    with ShardWriter(path) as w:
        w.write_rows([{"id": i, "sample": s, "completion": "x", "sampling": {"temperature": 0.6}}
                      for i in ids for s in (0, 2)])
    with path.open("a") as fh:                         # another writer's key order: the slow path reads it
        fh.write(json.dumps({"sample": 1, "id": "plain", "completion": "y"}) + "\n")
        fh.write("not json\n")
        fh.write('{"id": "cut", "sample": 0, "compl')  # no newline: an interrupted write
    done, first = scan_done(path)
    assert done == {**{i: {0, 2} for i in ids}, "plain": {0, 1, 2}}
    assert first is not None and first["id"] == "plain"
    assert missing_runs(done["plain"], 4) == [(3, 1)] and missing_runs(done["ünïcode ∑"], 4) == [(1, 1), (3, 1)]


# ------------------------------------------------------------------------------------------ sharding
def test_shards_partition_the_problems(tiny_qwen, tmp_path, capsys):
    from distill.data.problems import load_problems
    from distill.stages.generate.plan import select_shard, shard_of

    ids = [f"id-{i}" for i in range(300)]
    parts = [[i for i in ids if shard_of(i, 3) == k] for k in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and all(60 < len(p) < 140 for p in parts)

    data = write_problems(tmp_path / "problems.jsonl", 9)
    problems = load_problems(str(data))
    out = tmp_path / "traces"
    for k in range(2):
        assert gen(tiny_qwen, data, out, "--num-samples", "2", "--num-shards", "2", "--shard-index", str(k)) == 0
    files = sorted(p.name for p in out.glob("shard-*.jsonl"))
    assert files == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl"]
    for k in range(2):
        got = {r["id"] for r in rows_of(out / files[k])}
        assert got == {p.id for p in select_shard(problems, 2, k)}
        assert (out / "runs" / files[k].removesuffix(".jsonl") / "run.json").is_file()
    all_rows = list(iter_traces(out))
    assert Counter((r["id"], r["sample"]) for r in all_rows) == {(f"q{i}", s): 1 for i in range(9) for s in range(2)}
    capsys.readouterr()
    assert gen(tiny_qwen, data, out, "--num-samples", "2", "--num-shards", "3", "--shard-index", "0") == 2
    assert "num_shards: 2 in the folder, 3 now" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ errors
def test_missing_column_lists_the_columns(tiny_qwen, problems, tmp_path, capsys):
    assert gen(tiny_qwen, problems, tmp_path / "t", "--problem-column", "question") == 2
    err = capsys.readouterr().err
    assert "no column 'question'" in err and "Columns: id, problem, answer" in err and "--problem-column" in err


def test_bad_options_are_one_line_errors(tiny_qwen, problems, tmp_path, capsys):
    assert gen(tiny_qwen, problems, tmp_path / "t", "--num-shards", "2", "--shard-index", "2") == 2
    assert "shard_index must be in 0..1" in capsys.readouterr().err
    assert main(["generate", "--engine", "openai", "--teacher", "m", "--dataset", str(problems)]) == 2
    assert "needs --base-url" in capsys.readouterr().err
    assert main(["generate", "--dataset", str(problems)]) == 2
    assert "pass --teacher" in capsys.readouterr().err


def test_aime_mode_checks_golds_before_generating(tiny_qwen, tmp_path, capsys):
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"id": "a", "problem": "Half of 1?", "answer": "\\frac{1}{2}"}) + "\n")
    assert gen(tiny_qwen, data, tmp_path / "t", "--verify-mode", "aime") == 2
    err = capsys.readouterr().err
    assert "problem 'a'" in err and "not an integer" in err
    assert not list((tmp_path / "t").glob("shard-*"))


def test_help_and_print_config(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = capsys.readouterr().out
    assert "--num-samples" in text and "--base-url" in text and "examples:" in text and "resumes" in text
    assert main(["generate", "--teacher", "m", "--dataset", "d.jsonl", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "temperature: 0.6" in printed and "max_tokens: 32768" in printed and "num_samples: 4" in printed


# ------------------------------------------------------------------------------------------ one writer per shard
def test_a_second_writer_on_the_same_shard_is_refused(tiny_qwen, problems, tmp_path, capsys):
    import fcntl

    out = tmp_path / "traces"
    out.mkdir()
    with (out / f".{SHARD}.lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert gen(tiny_qwen, problems, out, "--num-samples", "1") == 2
        assert "is being written by" in capsys.readouterr().err
    assert gen(tiny_qwen, problems, out, "--num-samples", "1") == 0     # lock released: runs


# ------------------------------------------------------------------------------------------ SIGTERM, kill -9
def start_run(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "distill", "generate", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def stop_when(proc: subprocess.Popen, shard: Path, lines: int, sig: int) -> None:
    """Send ``sig`` once the shard holds ``lines`` rows; fail if the run ends first."""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if shard.exists() and shard.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before the signal: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sigterm_saves_finished_work_and_sigkill_loses_no_row(tiny_qwen, tmp_path):
    data = write_problems(tmp_path / "problems.jsonl", 40)
    out = tmp_path / "traces"
    shard = out / SHARD
    args = ["--engine", "hf", "--teacher", str(tiny_qwen), "--dataset", str(data), "--out", str(out),
            "--num-samples", "4", "--max-tokens", "24", "--chunk-size", "3", "--batch-size", "1",
            "--verify-workers", "0"]

    # SIGTERM (slurm preemption): exit code 130, every finished completion written, run.json says so.
    proc = start_run(args)
    stop_when(proc, shard, 12, signal.SIGTERM)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err
    run = json.loads((out / "run.json").read_text())
    lines = shard.read_bytes().count(b"\n")
    assert run["status"] == "partial" and run["counts"]["completions_written"] == lines < 160

    # SIGKILL mid-way: no chance to clean up.
    proc = start_run(args)
    stop_when(proc, shard, lines + 12, signal.SIGKILL)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    written = shard.read_bytes().count(b"\n")
    assert lines + 12 <= written < 160, written

    # The rerun finishes the job: every (problem, sample) exactly once, every row parseable.
    assert main(["generate", *args]) == 0
    rows = [json.loads(line) for line in shard.read_text().splitlines()]
    assert Counter((r["id"], r["sample"]) for r in rows) == {(f"q{i}", s): 1 for i in range(40) for s in range(4)}
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["completions_existing"] >= written - 1
