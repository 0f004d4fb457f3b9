"""The hand-overs between stages, each one contract in ``distill.data``: the trace row (generate -> filter), the SFT
row (filter -> sft), and the one answer to "does this prompt open <think>"."""

from __future__ import annotations

import json

import pytest

from distill.data.jsonl import ReadReport, ShardWriter
from distill.data.prompts import prompt_opens_think, render_prompt
from distill.data.shards import shard_name
from distill.data.traces import TRACE_FIELDS, iter_traces, trace_prompt_has_think, trace_row
from distill.engines import Completion


# ------------------------------------------------------------------------------------------ prompt_opens_think
@pytest.mark.parametrize("prompt, expected", [
    ("<|user|>1+1?\n<|assistant|><think>\n", True),
    ("<|assistant|><think>", True),
    ("User: 1+1?. Assistant: <think>  \n\n", True),
    ("<|user|>1+1?\n<|assistant|>", False),
    ("<think> in the middle </think>", False),
    ("reasoning</think>", False),
    ("", False),
    (None, False),
    ([], False),
    ([{"role": "user", "content": "1+1?"}], False),
    ([{"role": "user", "content": "ends with <think>"}], False),            # only an assistant prefill counts
    ([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "<think>\n"}], True),
    ([{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "sure"}], False),
    ([{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant"}], False),
])
def test_prompt_opens_think(prompt, expected):
    assert prompt_opens_think(prompt) is expected


def test_forced_think_prompts_open_think():
    assert prompt_opens_think(render_prompt(None, "1+1?", template="r1-zero", force_think=True))
    assert not prompt_opens_think(render_prompt(None, "1+1?", template="r1-zero"))


# ------------------------------------------------------------------------------------------ the trace row
def _generated_rows(prompt: str, has_think: bool) -> list[dict]:
    from distill.data.problems import Problem
    from distill.stages.generate.config import GenerateConfig
    from distill.stages.generate.plan import Job
    from distill.stages.generate.rows import build_rows, finalize, verify_rows

    cfg = GenerateConfig(teacher="t", dataset="d", verify_workers=0)
    job = Job(Problem("p1", "What is 2 + 3?", "5", "d"), start=0, prompt=prompt, prompt_has_think=has_think)
    rows = build_rows(cfg, "hf", job, [Completion("2 + 3 = 5\n</think>\n\n$\\boxed{5}$", None, "stop", 9, 9, 7),
                                       Completion("2 + 3 is", None, "length", 9, 4, 8)])
    verify_rows(cfg, rows)
    return finalize(rows)


def test_a_generated_row_reads_back_with_prompt_has_think(tmp_path):
    from distill.stages.filter.trace import prepare

    rows = _generated_rows("<|user|>What is 2 + 3?\n<|assistant|><think>\n", True)
    with ShardWriter(tmp_path / shard_name(0, 1)) as w:
        w.write_rows(rows)
    first = json.loads((tmp_path / shard_name(0, 1)).read_text().splitlines()[0])
    assert list(first) == list(TRACE_FIELDS) and first["prompt_has_think"] is True   # stored, not re-derived
    report = ReadReport()
    read = list(iter_traces(tmp_path, report))
    assert read == rows and report.rows == 2 and not report.bad
    assert [r["verdict"] for r in read] == ["correct", "unfinished"]
    trace = prepare(read[0], index=0, folder=str(tmp_path))
    assert trace.prompt_has_think and trace.reasoning == "2 + 3 = 5" and trace.answer == "$\\boxed{5}$"


def test_the_stored_prompt_has_think_wins_and_older_rows_fall_back(tmp_path):
    from distill.stages.filter.trace import prepare

    old = {"id": "a", "sample": 0, "prompt": "<|assistant|><think>\n", "completion": "r\n</think>\n\n$\\boxed{1}$"}
    stored = {**old, "id": "b", "prompt_has_think": False}
    with ShardWriter(tmp_path / shard_name(0, 1)) as w:
        w.write_rows([old, stored])
    read = list(iter_traces(tmp_path))
    assert [r["prompt_has_think"] for r in read] == [True, False]
    assert trace_prompt_has_think(old) is True and trace_prompt_has_think(stored) is False
    assert prepare(old, index=0, folder="f").prompt_has_think
    assert not prepare(stored, index=1, folder="f").prompt_has_think


def test_trace_row_takes_exactly_the_trace_fields():
    fields = dict.fromkeys(TRACE_FIELDS)
    assert list(trace_row(**fields)) == list(TRACE_FIELDS)
    with pytest.raises(ValueError, match="missing \\['prompt_has_think'\\]"):
        trace_row(**{k: v for k, v in fields.items() if k != "prompt_has_think"})
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        trace_row(**fields, extra=1)


# ------------------------------------------------------------------------------------------ the SFT row
def _kept_traces(n_problems: int) -> list:
    from distill.stages.filter.trace import prepare

    traces = []
    for i in range(n_problems):
        row = {"id": f"p{i}", "sample": 0, "problem": f"What is {i} + 1?", "teacher": "t",
               "completion": f"<think>\n{i} + 1 = {i + 1}\n</think>\n\n$\\boxed{{{i + 1}}}$", "finish_reason": "stop"}
        trace = prepare(row, index=i, folder="traces")
        trace.num_tokens = 10 + i
        traces.append(trace)
    return traces


@pytest.mark.parametrize("fraction", [0.0, 0.25])
def test_sft_rows_written_by_filter_read_back_by_sft(tmp_path, fraction):
    from distill.data.sft_rows import SFT_COLUMNS, message_problem, read_sft_folder
    from distill.stages.filter import dataset as sft_dataset
    from distill.stages.sft.data import load_sft_dataset

    rows = [sft_dataset.example(t) for t in _kept_traces(8)]
    assert all(list(r) == list(SFT_COLUMNS) for r in rows)
    splits = sft_dataset.split_by_problem(rows, fraction, seed=0)
    written = sft_dataset.save(sft_dataset.to_datasets(splits), tmp_path / "sft")
    assert [p.name for p in written] == [f"{name}.parquet" for name in splits]

    data = load_sft_dataset(str(tmp_path / "sft"), eval_split="validation")
    assert data.columns == list(SFT_COLUMNS) and data.splits == list(splits)
    back = list(data.train) + (list(data.eval) if data.eval is not None else [])
    assert sorted(back, key=lambda r: r["id"]) == sorted(rows, key=lambda r: r["id"])
    assert all(message_problem(r["messages"]) is None for r in back)
    assert back[0]["messages"][1]["content"].startswith("<think>\n")
    train, evalset, names = read_sft_folder(tmp_path / "sft", eval_split="validation")
    assert len(train) == len(data.train) and names == list(splits) and (evalset is None) == (fraction == 0)


def test_the_sft_reader_names_what_is_wrong(tmp_path):
    import datasets

    from distill.data.sft_rows import check_columns, read_sft_folder
    from distill.errors import DataError

    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a datasets.save_to_disk folder.*distill filter"):
        read_sft_folder(tmp_path / "plain")
    ds = datasets.Dataset.from_dict({"text": ["x"]})
    with pytest.raises(DataError, match="src: no 'messages' column; the columns are text"):
        check_columns(ds, "src")
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(DataError, match="no split 'dev'; it has train"):
        read_sft_folder(tmp_path / "d", split="dev")
