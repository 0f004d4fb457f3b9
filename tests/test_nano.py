"""The nano task: correct traces, a working checker, and held-out problems no training split contains."""

from __future__ import annotations

import json

import datasets
import pytest

from distill.configs.nano_task import NanoTaskConfig
from distill.nano import check_working, column_lines, gold_trace, operands, problem_text
from distill.stages.nano_task import run
from distill.verify import verify_completion


@pytest.mark.parametrize("a,b", [(347, 586), (10, 10), (999, 999), (5, 995), (123, 4)])
def test_gold_trace_is_correct_and_verifies(a, b):
    trace = gold_trace(a, b)
    assert verify_completion(trace, str(a + b)).correct
    assert check_working(trace, a, b)
    assert column_lines(a, b)[-1].endswith(f"-> {a + b}")


def test_check_working_catches_a_wrong_column_even_with_a_right_answer():
    good = gold_trace(347, 586)
    bad = good.replace("4+8+1=13 -> 33", "4+8+1=12 -> 23")
    assert verify_completion(bad, "933").correct and not check_working(bad, 347, 586)


def test_operands_roundtrip():
    assert operands(problem_text(12, 345)) == (12, 345)
    with pytest.raises(ValueError):
        operands("What is 2 * 3?")


def test_splits_are_disjoint_and_deterministic(tmp_path):
    cfg = NanoTaskConfig(out=str(tmp_path / "a"), train_problems=300, heldout_problems=100, warmup_examples=300)
    run(cfg)
    run(NanoTaskConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")}))
    rows = {s: [json.loads(x) for x in (tmp_path / "a" / f"{s}.jsonl").read_text().splitlines()]
            for s in ("train", "heldout")}
    assert (tmp_path / "a" / "heldout.jsonl").read_text() == (tmp_path / "b" / "heldout.jsonl").read_text()
    warm = datasets.load_from_disk(str(tmp_path / "a" / "warmup"))
    held = {frozenset(operands(r["problem"])) for r in rows["heldout"]}
    train = {frozenset(operands(r["problem"])) for r in rows["train"]}
    warm_pairs = {frozenset(operands(m[0]["content"])) for m in warm["messages"]}
    assert len(held) == 100 and not held & train and not held & warm_pairs
    assert all(r["answer"] == str(sum(operands(r["problem"]))) for r in rows["train"])
