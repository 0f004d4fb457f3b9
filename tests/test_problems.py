"""The shared data layer the generate stage stands on: problem files, prompt templates, trace folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.data.problems import content_id, load_problems
from distill.data.prompts import CHAT_SUFFIX, R1_ZERO_TEMPLATE, chat_messages, render_prompt
from distill.data.shards import scan_done, shard_name
from distill.data.traces import iter_traces
from distill.errors import DataError

ROWS = [{"problem": "What is 1 + 1?", "answer": 2, "level": "easy"},
        {"problem": "What is 2 + 2?", "answer": "4", "level": "easy"},
        {"problem": "Solve $x^2 = 9$ for $x > 0$.", "answer": "3", "level": "hard"}]


def write_all_formats(folder: Path) -> dict[str, Path]:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {"jsonl": folder / "p.jsonl", "json": folder / "p.json", "csv": folder / "p.csv",
             "parquet": folder / "p.parquet"}
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n")   # a blank line is fine
    paths["json"].write_text(json.dumps({"data": ROWS}))
    with paths["csv"].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerows(ROWS)
    pq.write_table(pa.Table.from_pylist([{**r, "answer": str(r["answer"])} for r in ROWS]), paths["parquet"])
    return paths


def test_every_local_format_gives_the_same_problems(tmp_path):
    paths = write_all_formats(tmp_path)
    loaded = {fmt: load_problems(str(p)) for fmt, p in paths.items()}
    reference = [(p.id, p.problem, p.answer) for p in loaded["jsonl"]]
    assert [r[2] for r in reference] == ["2", "4", "3"]          # answers become text
    for fmt, problems in loaded.items():
        assert [(p.id, p.problem, p.answer) for p in problems] == reference, fmt
        assert problems[0].extra == {"level": "easy"} and problems[0].source == str(paths[fmt])


def test_ids_are_a_stable_hash_of_the_text_without_an_id_column(tmp_path):
    paths = write_all_formats(tmp_path)
    problems = load_problems(str(paths["jsonl"]))
    assert problems[0].id == content_id("What is 1 + 1?") == content_id("What  is 1 +\n1?")
    assert len({p.id for p in problems}) == 3 and all(p.id.startswith("p-") for p in problems)


def test_id_column_limit_and_save_to_disk_folder(tmp_path):
    import datasets

    rows = [{"uid": f"u{i}", "question": f"What is {i} squared?", "solution": str(i * i)} for i in range(5)]
    folder = tmp_path / "ds"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    problems = load_problems(str(folder), problem_column="question", answer_column="solution", id_column="uid",
                             limit=3)
    assert [(p.id, p.answer) for p in problems] == [("u0", "0"), ("u1", "1"), ("u2", "4")]
    # An 'id'-like column is picked up without --id-column.
    path = tmp_path / "with_id.jsonl"
    path.write_text("".join(json.dumps({"unique_id": f"x/{i}", "problem": f"P{i}", "answer": "1"}) + "\n"
                            for i in range(2)))
    assert [p.id for p in load_problems(str(path))] == ["x/0", "x/1"]


def test_missing_column_error_lists_the_columns(tmp_path):
    path = write_all_formats(tmp_path)["csv"]
    with pytest.raises(DataError) as err:
        load_problems(str(path), problem_column="question")
    assert "no column 'question'" in str(err.value) and "Columns: problem, answer, level" in str(err.value)
    assert "--problem-column" in str(err.value)
    with pytest.raises(DataError, match="--answer-column"):
        load_problems(str(path), answer_column="gold")
    assert all(p.answer is None for p in load_problems(str(path), answer_column=None))


def test_duplicate_ids_are_rejected(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps({"id": i, "problem": f"P{n}"}) + "\n" for n, i in enumerate([1, 2, 1])))
    with pytest.raises(DataError, match=r"duplicate id '1' in rows 0 and 2"):
        load_problems(str(path), answer_column=None)
    same_text = tmp_path / "same.jsonl"
    same_text.write_text(json.dumps({"problem": "Same?"}) + "\n" + json.dumps({"problem": "Same?"}) + "\n")
    with pytest.raises(DataError, match="identical problem text"):
        load_problems(str(same_text), answer_column=None)


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "ok"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        load_problems(str(bad), answer_column=None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no rows"):
        load_problems(str(empty))
    with pytest.raises(DataError, match="not found"):
        load_problems(str(tmp_path / "missing.jsonl"))
    blank = tmp_path / "blank.jsonl"
    blank.write_text(json.dumps({"problem": "  "}) + "\n")
    with pytest.raises(DataError, match=r"blank\.jsonl:1: column 'problem' is empty"):
        load_problems(str(blank), answer_column=None)


def test_undecodable_and_fake_files_are_one_clear_error(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps({"problem": "a", "answer": "1"}).encode() + b"\n" + b'{"problem": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl:2: not UTF-8 text"):
        load_problems(str(latin))
    fake = tmp_path / "fake.parquet"
    fake.write_text("this is not parquet")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable parquet file"):
        load_problems(str(fake))
    csv_file = tmp_path / "p.csv"
    csv_file.write_bytes(b"problem,answer\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_problems(str(csv_file))


def test_missing_answers_are_listed_and_non_text_answers_refused(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}, {"problem": "3+3?", "answer": 6},
            {"problem": "4+4?", "answer": ""}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems = load_problems(str(path))
    assert [p.answer for p in problems] == ["2", None, "6", None]
    assert problems.missing_answers == [f"{path}:2", f"{path}:4"]
    for bad in (["1", "2"], True, {"a": 1}):
        path.write_text(json.dumps({"problem": "ok?", "answer": "1"}) + "\n" + json.dumps({"problem": "x?", "answer": bad}) + "\n")
        with pytest.raises(DataError, match=rf"p\.jsonl:2: column 'answer' holds a {type(bad).__name__}"):
            load_problems(str(path))


# ------------------------------------------------------------------------------------------ prompts
def test_chat_prompt_is_the_papers(tiny_qwen):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    assert chat_messages("What is 1+1?") == [{"role": "user", "content": f"What is 1+1?\n{CHAT_SUFFIX}"}]
    text = render_prompt(tok, "What is 1+1?")
    assert text == f"<|begin_of_text|><|user|>What is 1+1?\n{CHAT_SUFFIX}\n<|assistant|>"
    assert render_prompt(tok, "What is 1+1?", force_think=True) == text + "<think>\n"
    with_system = render_prompt(tok, "What is 1+1?", system="Be brief.")
    assert with_system.startswith("<|begin_of_text|><|system|>Be brief.\n<|user|>")


def test_r1_zero_template():
    text = render_prompt(None, "  What is 1+1?  ", template="r1-zero")
    assert text == R1_ZERO_TEMPLATE.format(problem="What is 1+1?")
    assert text.startswith("A conversation between User and Assistant.") and text.endswith("User: What is 1+1?. Assistant:")
    assert render_prompt(None, "x", template="r1-zero", force_think=True).endswith("Assistant: <think>")
    with pytest.raises(ValueError, match="unknown prompt template"):
        render_prompt(None, "x", template="alpaca")


# ------------------------------------------------------------------------------------------ traces
def test_traces_folder_of_shards(tmp_path):
    from distill.data.jsonl import ReadReport, ShardWriter

    assert shard_name(3, 16) == "shard-00003-of-00016.jsonl"
    for k in range(2):
        with ShardWriter(tmp_path / shard_name(k, 2)) as w:
            w.write_rows([{"id": f"p{k}", "sample": s, "completion": "c"} for s in range(3)])
    with (tmp_path / shard_name(1, 2)).open("a") as fh:
        fh.write(json.dumps({"id": "p9", "completion": "no sample field"}) + "\n")
        fh.write('{"id": "p9", "sample": 0, "compl')
    report = ReadReport()
    rows = list(iter_traces(tmp_path, report))
    assert [(r["id"], r["sample"]) for r in rows] == [("p0", 0), ("p0", 1), ("p0", 2), ("p1", 0), ("p1", 1), ("p1", 2)]
    assert report.rows == 6 and len(report.bad) == 2
    assert "missing field(s) sample" in report.bad[0].reason and "partial last line" in report.bad[1].reason
    done = [scan_done(tmp_path / shard_name(k, 2))[0] for k in range(2)]
    assert {(i, s) for d in done for i, samples in d.items() for s in samples} == {
        (f"p{k}", s) for k in range(2) for s in range(3)}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no trace shards"):
        list(iter_traces(tmp_path / "empty"))
