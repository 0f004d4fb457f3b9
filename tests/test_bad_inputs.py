"""Bad inputs found by ``scripts/battery.py``: each is one clear error (exit 2) that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.errors import DataError, DistillError


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------------------ recipes
def test_a_recipe_that_is_not_utf8_is_one_clear_error(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"generate:\n  teacher: caf\xe9\n")
    assert main(["generate", "--recipe", str(recipe)]) == 2
    assert f"{recipe}: not UTF-8 text" in _err(capsys)


def test_a_yaml_syntax_error_is_one_line_naming_the_recipe_line(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tiny:\n  layers: 1\n   x: 2\n")
    assert main(["tiny", "--recipe", str(recipe)]) == 2
    err = _err(capsys).strip()
    assert f"{recipe}:3: not valid YAML" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------------------------ tiny, nano-task
@pytest.mark.parametrize("flag", ["--layers", "--heads", "--kv-heads", "--intermediate", "--corpus-size"])
def test_tiny_refuses_sizes_below_one(tmp_path, capsys, flag):
    out = tmp_path / "m"
    assert main(["tiny", flag, "0", "--out", str(out)]) == 2
    assert f"{flag[2:].replace('-', '_')} must be >= 1" in _err(capsys)
    assert not out.exists()


def test_nano_task_names_the_negative_count(capsys):
    assert main(["nano-task", "--train-problems", "-1"]) == 2
    assert "train_problems must be >= 0, got -1" in _err(capsys)


def test_nano_task_never_writes_into_a_folder_it_did_not_make(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.jsonl").write_text("my own data\n")
    args = ["nano-task", "--out", str(mine), "--train-problems", "4", "--heldout-problems", "2",
            "--warmup-examples", "2"]
    assert main(args) == 2
    assert "distill did not write" in _err(capsys)
    assert (mine / "train.jsonl").read_text() == "my own data\n"
    fresh = tmp_path / "task"
    args[2] = str(fresh)
    assert main(args) == 0 and main(args) == 0            # its own folder: rerun freely


# ------------------------------------------------------------------------------------------------ eval, card
def test_eval_never_replaces_results_in_a_folder_it_did_not_make(tmp_path, capsys):
    completions = tmp_path / "c.jsonl"
    completions.write_text(json.dumps({"id": "q0", "answer": "3", "completions": ["\\boxed{3}"]}) + "\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"mine": 1}\n')
    assert main(["eval", "--completions", str(completions), "--out", str(mine)]) == 2
    assert "distill did not write" in _err(capsys)
    assert (mine / "results.json").read_text() == '{"mine": 1}\n'
    out = tmp_path / "ev"
    assert main(["eval", "--completions", str(completions), "--out", str(out)]) == 0
    assert main(["eval", "--completions", str(completions), "--out", str(out)]) == 0   # its own: rerun freely


@pytest.mark.parametrize("content, why", [(None, "no such folder"), ("", "no run.json in it"),
                                          ('[{"stage": "sft"}]', "its run.json is not a run record")])
def test_card_refuses_an_sft_dir_without_a_run_record(tmp_path, capsys, content, why):
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "run.json").write_text(content)
    cards = tmp_path / "cards"
    assert main(["card", "--student", "tiny-qwen", "--sft-dir", str(run), "--out", str(cards)]) == 2
    assert f"--sft-dir {run}: {why}" in _err(capsys)
    assert not (cards / "tiny-qwen.md").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc (unwritable even for root)")
def test_an_unwritable_out_is_refused_before_any_work_even_as_root(tmp_path):
    from distill.outdir import check_writable

    with pytest.raises(DistillError, match="cannot write in /proc"):
        check_writable("/proc/distill-test/out")
    check_writable(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())   # the probe leaves nothing


def test_card_out_under_a_file_is_one_clear_error(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["card", "--student", "qwen-7b", "--runs", str(tmp_path / "runs"),
                 "--out", str(afile / "sub")]) == 2
    assert "cannot write qwen-7b.md there" in _err(capsys)
    assert afile.read_text() == "x"


# ------------------------------------------------------------------------------------------------ traces folders
def test_the_shard_lock_under_a_file_is_one_clear_error(tmp_path):
    from distill.data.shards import shard_lock

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DistillError, match="cannot write there"), shard_lock(afile / "sub", "shard.jsonl"):
        pass


def _prepare(out, settings, *, shard=0, shards=1, overwrite=False):
    from distill.data.shards import prepare_folder, shard_lock

    name = f"shard-{shard:05d}-of-{shards:05d}.jsonl"
    record = out if shards == 1 else out / "runs" / name[:-6]
    with shard_lock(out, name):
        prepare_folder(out, out / name, record, settings, overwrite=overwrite, num_shards=shards)
    return out / name


def test_a_new_traces_folder_is_marked_though_its_lock_came_first(tmp_path):
    from distill.outdir import made_by

    out = tmp_path / "traces"
    _prepare(out, {"temperature": 0.6})
    assert made_by(out) == "generate"


def test_generate_overwrite_deletes_nothing_in_a_folder_it_did_not_make(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text('{"my": "notes"}\n')
    for overwrite in (True, False):
        with pytest.raises(DistillError, match="not a 'distill generate' record"):
            _prepare(mine, {"temperature": 0.6}, overwrite=overwrite)
    assert (mine / "run.json").read_text() == '{"my": "notes"}\n'
    (mine / "run.json").unlink()
    (mine / "shard-00000-of-00001.jsonl").write_text('{"id": "a", "sample": 0}\n')
    with pytest.raises(DistillError, match="not made by 'distill generate'"):
        _prepare(mine, {"temperature": 0.6}, overwrite=True)
    assert (mine / "shard-00000-of-00001.jsonl").exists()


def test_a_refused_shard_overwrite_keeps_that_shard(tmp_path):
    out = tmp_path / "traces"
    shards = [_prepare(out, {"temperature": 0.6}, shard=k, shards=2) for k in range(2)]
    for path in shards:
        path.write_text('{"id": "a", "sample": 0}\n')
    with pytest.raises(DistillError, match="other shards hold traces made with other settings"):
        _prepare(out, {"temperature": 0.9}, shard=1, shards=2, overwrite=True)
    assert all(p.read_text() == '{"id": "a", "sample": 0}\n' for p in shards)


def test_a_missing_column_lists_only_the_files_columns(tmp_path):
    from distill.data.problems import load_problems

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(DataError, match=r"Columns: id, problem, answer$"):
        load_problems(str(path), problem_column="question")


# ------------------------------------------------------------------------------------------------ SFT data
def test_an_sft_jsonl_with_a_bad_line_names_it(tmp_path):
    from distill.stages.sft.data import load_sft_dataset

    path = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    path.write_bytes(json.dumps(row).encode() + b'\n{"messages": [\n')
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        load_sft_dataset(str(path))


def test_a_fake_parquet_sft_file_is_one_clear_error(tmp_path):
    from distill.stages.sft.data import load_sft_dataset

    path = tmp_path / "d.parquet"
    path.write_text("PAR1 no\n")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_sft_dataset(str(path))


def test_sft_on_a_filter_output_that_kept_nothing_says_so(tmp_path):
    from distill.data.sft_rows import save_sft_dataset, to_datasets
    from distill.stages.sft.data import load_sft_dataset

    out = tmp_path / "empty"
    save_sft_dataset(to_datasets({"train": []}), out)
    (out / "run.json").write_text(json.dumps({"stage": "filter", "status": "empty", "counts": {"rows_kept": 0}}))
    with pytest.raises(DataError, match=r"status 'empty', 0 rows kept"):
        load_sft_dataset(str(out))
    (out / "run.json").unlink()                 # without its record: still one clear error, not an IndexError
    with pytest.raises(DataError):
        load_sft_dataset(str(out))
