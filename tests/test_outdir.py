"""--overwrite deletes a folder only if distill made it for the same command, and never cwd, a parent, or home."""

from __future__ import annotations

import os

import pytest

from distill.errors import DistillError
from distill.outdir import MARKER, made_by, prepare_out


def test_a_new_folder_is_marked_and_overwrite_clears_only_ours(tmp_path):
    out = prepare_out(tmp_path / "run", "sft", overwrite=False)
    assert made_by(out) == "sft"
    (out / "model.bin").write_text("weights")
    prepare_out(out, "sft", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]


def test_overwrite_refuses_a_folder_distill_did_not_make(tmp_path):
    mine = tmp_path / "my-data"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(DistillError, match="not made by distill"):
        prepare_out(mine, "tiny", overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    prepare_out(mine, "tiny", overwrite=False)          # used as it is, but never marked as ours
    assert made_by(mine) is None


def test_overwrite_refuses_another_commands_output(tmp_path):
    traces = prepare_out(tmp_path / "traces", "generate", overwrite=False)
    (traces / "shard-00000-of-00001.jsonl").write_text("{}\n")
    for overwrite in (False, True):
        with pytest.raises(DistillError, match="'distill generate'"):
            prepare_out(traces, "sft", overwrite=overwrite)
    assert (traces / "shard-00000-of-00001.jsonl").exists()


@pytest.mark.parametrize("where", ["cwd", "parent", "home"])
def test_overwrite_refuses_the_current_folder_its_parents_and_home(tmp_path, monkeypatch, where):
    work = tmp_path / "home" / "me" / "project"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "me"))
    target = {"cwd": work, "parent": work.parent.parent, "home": tmp_path / "home" / "me"}[where]
    (target / MARKER).write_text('{"command": "tiny"}')  # even a marked one
    with pytest.raises(DistillError, match="refusing to delete"):
        prepare_out(target if where != "cwd" else ".", "tiny", overwrite=True)
    assert (work / "keep.txt").exists()


def test_out_under_a_file_or_read_only_is_one_clear_error(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(DistillError, match="is a file"):
        prepare_out(afile, "filter", overwrite=False)
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders; the file case above still ran")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(DistillError, match="cannot write"):
        prepare_out(ro / "out", "filter", overwrite=False)


def test_tiny_overwrite_of_the_current_folder_is_refused_and_deletes_nothing(tmp_path, monkeypatch, capsys):
    from distill.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["tiny", "--out", ".", "--overwrite", "--layers", "1"]) == 2
    assert "refusing to delete" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_tiny_overwrite_replaces_its_own_output(tmp_path):
    from distill.cli import main

    out = tmp_path / "tiny"
    assert main(["tiny", "--out", str(out), "--layers", "1", "--corpus-size", "300"]) == 0
    (out / "stale.txt").write_text("old")
    assert main(["tiny", "--out", str(out), "--layers", "1", "--corpus-size", "300", "--overwrite"]) == 0
    assert not (out / "stale.txt").exists() and made_by(out) == "tiny"


def test_check_writable_fails_before_work_and_creates_nothing(tmp_path):
    from distill.outdir import check_writable

    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(DistillError, match="is a file"):
        check_writable(afile / "sub" / "out")
    check_writable(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
