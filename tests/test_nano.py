"""The nano task: correct traces, a working checker, and held-out problems no training split contains."""

from __future__ import annotations

import json
import re

import datasets
import pytest

from distill.stages.nano_task.config import NanoTaskConfig
from distill.stages.nano_task.stage import run
from distill.stages.nano_task.task import check_working, column_lines, gold_trace, operands, problem_text
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


def test_validation_split_is_kept_out_of_training_and_the_test_set(tmp_path):
    cfg = NanoTaskConfig(out=str(tmp_path / "a"), train_problems=300, heldout_problems=100,
                         validation_problems=50, warmup_examples=300)
    run(cfg)

    def pairs(name):
        return {frozenset(operands(json.loads(x)["problem"])) for x in (tmp_path / "a" / name).read_text().splitlines()}

    val, held, train = pairs("validation.jsonl"), pairs("heldout.jsonl"), pairs("train.jsonl")
    warm = {frozenset(operands(m[0]["content"])) for m in datasets.load_from_disk(str(tmp_path / "a" / "warmup"))["messages"]}
    assert len(val) == 50 and not val & held and not val & train and not val & warm
    # A rerun without a validation split removes the stale file (a later step must not read it).
    run(NanoTaskConfig(**{**cfg.__dict__, "validation_problems": 0}))
    assert not (tmp_path / "a" / "validation.jsonl").exists()


def test_slipped_warmup_traces_are_wrong_at_about_the_rate_and_self_consistent(tmp_path):
    from distill.verify import VerifySettings, verify_batch

    run(NanoTaskConfig(out=str(tmp_path), train_problems=10, heldout_problems=10, warmup_examples=2000,
                       warmup_slip_rate=0.4))
    warm = datasets.load_from_disk(str(tmp_path / "warmup"))
    lines = [ln for m in warm["messages"] for ln in m[1]["content"].split("</think>")[0].splitlines()[1:]]
    columns = [ln for ln in lines if not ln.startswith("0+0+1=1")]
    wrong = sum(int(a) + int(b) + int(c) != int(s) for a, b, c, s in
                (re.match(r"(\d)\+(\d)\+(\d)=(\d+)", ln).groups() for ln in columns))
    assert 0.36 < wrong / len(columns) < 0.44  # 0.4 of ~6,000 columns
    answers = [m[1]["content"] for m in warm["messages"]]
    golds = [str(sum(operands(m[0]["content"]))) for m in warm["messages"]]
    verdicts = verify_batch(answers, golds, VerifySettings(workers=0))
    assert [v.correct for v in verdicts] == warm["correct"]           # the flag says what the verifier says
    assert 0.3 < 1 - sum(warm["correct"]) / len(warm) < 0.9
    # Self-consistent: the boxed answer is the last partial result of the working.
    assert all(int(a.split("</think>")[0].strip().splitlines()[-1].rsplit("-> ", 1)[1])
               == int(re.search(r"\\boxed\{(\d+)\}", a.split("</think>")[1]).group(1)) for a in answers)
    with pytest.raises(ValueError, match="warmup_slip_rate"):
        NanoTaskConfig(warmup_slip_rate=1.5)


def test_sampling_by_digits_makes_mixed_length_sums_common_and_keeps_splits_apart(tmp_path):
    def mixed_share(sampling: str) -> tuple[float, set[frozenset[int]], set[frozenset[int]]]:
        out = tmp_path / sampling
        run(NanoTaskConfig(out=str(out), train_problems=1000, heldout_problems=200, warmup_examples=200,
                           operand_sampling=sampling))
        split = {s: [operands(json.loads(x)["problem"]) for x in (out / f"{s}.jsonl").read_text().splitlines()]
                 for s in ("train", "heldout")}
        mixed = sum(len(str(a)) != len(str(b)) for a, b in split["train"]) / len(split["train"])
        return mixed, {frozenset(p) for p in split["train"]}, {frozenset(p) for p in split["heldout"]}

    by_value, _, _ = mixed_share("values")
    by_digits, train, held = mixed_share("digits")
    assert 0.10 < by_value < 0.24            # about 2 x 0.9 x 0.09 = 0.16 from 10-999
    assert 0.43 < by_digits < 0.57           # one in two
    assert not train & held


def test_unknown_operand_sampling_and_an_exhausted_range_are_clear_errors():
    with pytest.raises(ValueError, match="operand_sampling"):
        NanoTaskConfig(operand_sampling="lengths")
    from random import Random

    from distill.stages.nano_task.task import sample_pairs
    with pytest.raises(ValueError, match="widen the range"):
        sample_pairs(5, 1, 2, Random(0), set())
