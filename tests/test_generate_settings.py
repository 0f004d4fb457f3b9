"""Generate's folder settings: a failed first run binds nothing; one shard's --overwrite cannot change the settings
the other shards were written with; a changed problems file is noticed."""

from __future__ import annotations

import json

import pytest

from distill.data.shards import SETTINGS_FILE, prepare_folder
from distill.errors import DistillError


def _prepare(out, settings, *, shard=0, shards=1, overwrite=False):
    name = f"shard-{shard:05d}-of-{shards:05d}.jsonl"
    record = out if shards == 1 else out / "runs" / name[:-6]
    prepare_folder(out, out / name, record, settings, overwrite=overwrite, num_shards=shards)
    return out / name


def test_settings_left_by_a_run_that_wrote_nothing_bind_nothing(tmp_path):
    out = tmp_path / "traces"
    _prepare(out, {"temperature": 0.6})
    assert json.loads((out / SETTINGS_FILE).read_text()) == {"temperature": 0.6}
    _prepare(out, {"temperature": 0.7})                     # no rows were written: the new settings win
    assert json.loads((out / SETTINGS_FILE).read_text()) == {"temperature": 0.7}


def test_a_shard_overwrite_with_other_settings_is_refused_while_other_shards_hold_rows(tmp_path):
    out = tmp_path / "traces"
    for k in range(2):
        _prepare(out, {"temperature": 0.6}, shard=k, shards=2).write_text('{"id": "a", "sample": 0}\n')
    with pytest.raises(DistillError, match="other shards hold traces made with other settings"):
        _prepare(out, {"temperature": 0.9}, shard=1, shards=2, overwrite=True)
    assert json.loads((out / SETTINGS_FILE).read_text()) == {"temperature": 0.6}
    _prepare(out, {"temperature": 0.6}, shard=1, shards=2, overwrite=True)   # same settings: allowed
    _prepare(out, {"temperature": 0.9}, overwrite=True)                       # unsharded: clears every shard
    assert not list(out.glob("shard-*-of-00002.jsonl"))


def test_changed_golds_in_the_problems_file_are_noticed_on_rerun(tmp_path, tiny_qwen, capsys):
    from distill.cli import main

    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)})
                                + "\n" for i in range(2)))
    args = ["generate", "--teacher", str(tiny_qwen), "--dataset", str(problems), "--engine", "hf",
            "--num-samples", "1", "--max-tokens", "4", "--out", str(tmp_path / "t"), "--verify-workers", "0"]
    assert main(args) == 0
    assert main(args) == 0                                   # unchanged: nothing to do
    problems.write_text(problems.read_text().replace('"answer": "2"', '"answer": "3"'))
    capsys.readouterr()
    assert main(args) == 2                                   # a gold changed: refused, naming the file
    err = capsys.readouterr().err
    assert f"problems in {problems}" in err and "changed since these traces were written" in err
