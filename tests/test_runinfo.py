"""run.json: lineage, versions, fingerprints, and no secrets."""

from __future__ import annotations

import json

from distill.runinfo import RunRecord, fingerprint_path, is_complete, read_run
from distill.stages.tiny.config import TinyConfig


def test_run_json_has_lineage_and_versions(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"a": 1}\n')
    rec = RunRecord("tiny", TinyConfig(out=str(tmp_path / "o")), inputs={"dataset": data})
    rec.counts["rows"] = 1
    path = rec.write(tmp_path / "o")
    run = json.loads(path.read_text())
    assert run["stage"] == "tiny" and run["status"] == "complete"
    assert run["config"]["out"] == str(tmp_path / "o")
    assert run["inputs"]["dataset"]["sha256"] == fingerprint_path(data)["sha256"]
    assert run["versions"]["python"] and "torch" in run["versions"]
    assert run["wall_time_s"] >= 0 and run["counts"] == {"rows": 1}
    assert is_complete(tmp_path / "o", TinyConfig(out=str(tmp_path / "o")))
    assert not is_complete(tmp_path / "o", TinyConfig(out=str(tmp_path / "o"), seed=9))


def test_secret_env_values_never_land_in_run_json(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    rec = RunRecord("tiny", TinyConfig(out="sk-test-abcdef123456-folder"))
    rec.extra["note"] = "called with sk-test-abcdef123456"
    rec.write(tmp_path)
    text = (tmp_path / "run.json").read_text()
    assert "sk-test-abcdef123456" not in text and "<redacted>" in text


def test_folder_fingerprint_changes_with_content(tmp_path):
    (tmp_path / "a.txt").write_text("1")
    before = fingerprint_path(tmp_path)
    (tmp_path / "a.txt").write_text("2")
    assert fingerprint_path(tmp_path)["sha256"] != before["sha256"]
    assert read_run(tmp_path) is None
