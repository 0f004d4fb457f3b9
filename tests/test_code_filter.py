"""``distill filter`` on code traces: a trace whose row carries tests is kept only if its program passes."""

from __future__ import annotations

import json

from distill.stages.filter.apply import fill_verdicts
from distill.stages.filter.trace import prepare
from distill.verify import VerifySettings

TESTS = {"test": "def check(f):\n    assert f(2, 3) == 5\n    assert f(0, 7) == 7\n", "entry_point": "add"}
REASONING = ("We need a function that adds two integers and returns the sum.\n\n"
             "Python's plus operator does exactly that, so the body is one line.")


def _row(sample: int, code: str, **extra) -> dict:
    return {"id": "add", "sample": sample, "problem": "Write add(a, b) returning a + b.",
            "prompt": "<|user|>Write add(a, b).\n<|assistant|>",
            "completion": f"<think>\n{REASONING}\n</think>\n\n```python\n{code}```",
            "verdict": None, "gold": None, "tests": TESTS, "prompt_tokens": 10, "completion_tokens": 60,
            "finish_reason": "stop", "teacher": "t", **extra}


ROWS = [
    _row(0, "def add(a, b):\n    return a + b\n"),                    # right
    _row(1, "def add(a, b):\n    return b + a\n"),                    # right (another program)
    _row(2, "def add(a, b):\n    return a * b\n"),                    # wrong
]


def test_fill_verdicts_runs_the_programs_of_code_traces():
    traces = [prepare(r, index=i, folder="traces") for i, r in enumerate(ROWS)]
    # a code row with tests as JSON text, and one whose reasoning never closed (no answer, so no code)
    traces.append(prepare(_row(3, "x = 1\n", tests=json.dumps(TESTS)), index=3, folder="traces"))
    traces.append(prepare({**_row(4, ""), "completion": "<think>\nstill going ```python\ndef add(a, b):\n"
                           "    return a + b\n```"}, index=4, folder="traces"))
    traces[3].verdict = "no_gold"    # what the stage writes on rows without a gold: still run
    report = fill_verdicts(traces, VerifySettings(workers=2), progress=False)
    assert [t.verdict for t in traces] == ["correct", "correct", "wrong_answer", "error", "no_code"]
    assert report["verified"] == 5 and report["code_verified"] == 5


def test_filter_keeps_exactly_the_traces_whose_program_passes():
    from distill.stages.filter.apply import filter_traces
    from distill.stages.filter.config import FilterConfig
    from distill.stages.filter.rules import FilterContext

    cfg = FilterConfig(traces=["traces"], out="sft", require_answer=False, dedup=False, decontaminate=False,
                       length=False, verify_workers=2)
    traces = [prepare(r, index=i, folder="traces") for i, r in enumerate(ROWS)]
    fill_verdicts(traces, cfg.verify_settings(), progress=False)
    outcome = filter_traces(traces, FilterContext(cfg), workers=1, progress=False)
    assert sorted(t.sample for t in outcome.kept) == [0, 1]
    assert outcome.failures == {2: ["correctness:wrong_answer"]}


def test_distill_filter_command_keeps_exactly_the_passing_programs(tmp_path, capsys):
    from distill.cli import main

    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "sft"
    assert main(["filter", "--traces", str(folder), "--out", str(out), "--no-decontaminate", "--no-dedup",
                 "--no-length", "--workers", "1", "--verify-workers", "2"]) == 0
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["rows_kept"] == 2 and stats["drops_first"] == {"correctness:wrong_answer": 1}
    assert "no gold answer" not in capsys.readouterr().out
