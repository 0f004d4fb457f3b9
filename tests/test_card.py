"""distill card: lineage from a fake run.json chain, measured numbers beside the paper's, and the committed cards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from distill.cli import main
from distill.config import option
from distill.runinfo import RunRecord
from distill.stages.card.config import PAPER_STUDENTS
from distill.stages.card.lineage import trace_lineage

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FakeConfig:
    note: str = option("", "what this fake stage did")
    learning_rate: float = option(1e-5, "only for the sft run")
    student: str = option("qwen-7b", "the student an sft run trained")


@pytest.fixture
def chain(tmp_path) -> dict[str, Path]:
    """generate -> filter -> sft, each folder with the run.json its stage would write."""
    traces, data, model = tmp_path / "traces", tmp_path / "sft-data", tmp_path / "qwen-7b"
    gen = RunRecord("generate", FakeConfig(note="teacher traces"))
    gen.counts["completions"] = 640
    gen.write(traces)
    flt = RunRecord("filter", FakeConfig(note="rejection sampling"), inputs={"traces": traces})
    flt.counts["kept"] = 321
    flt.write(data)
    sft = RunRecord("sft", FakeConfig(note="distill", learning_rate=5e-5), inputs={"dataset": data,
                                                                                   "tokenizer_source": "Qwen/x"})
    sft.counts["steps"] = 12
    sft.write(model)
    return {"traces": traces, "data": data, "model": model}


def measured_eval(tmp_path: Path, n: int = 16, correct: int = 8, model: Path | None = None) -> Path:
    """A real `distill eval --completions` output: 2 AIME problems, `correct` of n right on each; with ``model``,
    its run.json says it evaluated that folder (as `distill eval --model DIR` records it)."""
    f = tmp_path / "c.jsonl"
    rows = [{"id": i, "answer": str(10 + i), "completions": [f"\\boxed{{{10 + i}}}"] * correct
             + ["\\boxed{999}"] * (n - correct)} for i in range(2)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "evals" / "aime24"
    assert main(["eval", "--task", "aime24", "--completions", str(f), "--out", str(out), "--verify-workers", "0"]) == 0
    if model is not None:
        run = json.loads((out / "run.json").read_text())
        run["inputs"]["model"] = {"path": str(model), "stage": "sft"}
        (out / "run.json").write_text(json.dumps(run))
    return out


def test_lineage_follows_run_json_inputs_upstream(chain):
    node = trace_lineage(chain["model"])
    assert [(how, n.stage) for how, n in node.flatten()] == [("start", "sft"), ("dataset", "filter"),
                                                             ("filter.traces", "generate")]
    assert node.unresolved == {"tokenizer_source": "Qwen/x"}
    assert trace_lineage(chain["model"].parent / "nowhere") is None


def test_card_from_a_run_chain_and_an_eval(chain, tmp_path, capsys):
    evals = measured_eval(tmp_path, model=chain["model"])
    cards = tmp_path / "cards"
    assert main(["card", "--student", "qwen-7b", "--sft-dir", str(chain["model"]), "--eval-dir",
                 str(evals.parent), "--out", str(cards), "--recipes", str(tmp_path / "no-recipes")]) == 0
    text = (cards / "qwen-7b.md").read_text()
    assert "lineage sft -> filter -> generate; measured: aime24" in capsys.readouterr().out
    # measured beside the paper, and plain about what was not measured
    assert "| AIME 2024 | pass@1 | 50.0 ± 0.0 (n=16) | 55.5 |" in text
    assert "| AIME 2024 | cons@64 | not measured yet | 83.3 |" in text
    assert "| AIME 2024 | cons@16 | 100.0 (n=16) | — |" in text
    assert "Measured here: AIME 2024." in text and "Every benchmark number on this card is the paper's" not in text
    # lineage, newest first, each with its counts and config
    pos = [text.index(h) for h in ("### sft", "### filter (input `dataset`)", "### generate (input `filter.traces`)")]
    assert pos == sorted(pos)
    assert "counts: steps 12" in text and "counts: kept 321" in text and "counts: completions 640" in text
    assert '"learning_rate": 5e-05' in text
    assert "input `tokenizer_source`: `Qwen/x` (no run.json there" in text
    # how it was measured
    assert f"`{evals}`" in text and "samples per problem: 4" not in text and "n = 16" in text
    assert "mode 'aime'" in text


def test_card_finds_the_lineage_through_the_evals_model(chain, tmp_path):
    evals = measured_eval(tmp_path, n=64, correct=16, model=chain["model"])
    cards = tmp_path / "cards"
    assert main(["card", "--student", "qwen-7b", "--eval-dir", str(evals), "--out", str(cards)]) == 0
    text = (cards / "qwen-7b.md").read_text()
    assert "### sft" in text and "### generate" in text
    assert "| AIME 2024 | cons@64 | 0.0 (n=64) | 83.3 |" in text
    assert "| AIME 2024 | pass@1 | 25.0 ± 0.0 (n=64) | 55.5 |" in text


def test_card_refuses_runs_of_another_student_or_model(chain, tmp_path, capsys):
    cards = tmp_path / "cards"
    tiny = tmp_path / "tiny-run"
    RunRecord("sft", FakeConfig(student="tiny-qwen")).write(tiny)
    (tmp_path / "u").mkdir()
    (tmp_path / "c").mkdir()
    unrelated = measured_eval(tmp_path / "u", model=tmp_path / "some-other-model")
    completions_only = measured_eval(tmp_path / "c")
    for sft_dir, eval_dir, why in ((tiny, None, "SFT run of student 'tiny-qwen', not 'qwen-7b'"),
                                   (chain["data"], None, "holds a 'distill filter' run"),
                                   (chain["model"], unrelated, "not the student in"),
                                   (chain["model"], completions_only, "scored a completions file")):
        args = ["card", "--student", "qwen-7b", "--sft-dir", str(sft_dir), "--out", str(cards)]
        args += ["--eval-dir", str(eval_dir)] if eval_dir else ["--eval-dir", str(tmp_path / "none")]
        assert main(args) == 2, why
        assert why in capsys.readouterr().err
    assert not (cards / "qwen-7b.md").exists()


def test_card_without_runs_says_not_measured_yet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["card", "--student", "llama-70b", "--out", "cards"]) == 0
    text = (tmp_path / "cards" / "llama-70b.md").read_text()
    assert text.count("not measured yet") == 2
    assert "| AIME 2024 | pass@1 | not measured yet | 70.0 |" in text
    assert "| AIME 2024 | cons@64 | not measured yet | 86.7 |" in text
    assert "Measured here: nothing yet" in text and "Every benchmark number on this card is the paper's" in text
    assert "No run of this student was found" in text
    assert "meta-llama/Llama-3.3-70B-Instruct" in text


def test_card_errors(capsys):
    assert main(["card"]) == 2
    assert "pass --student NAME" in capsys.readouterr().err
    assert main(["card", "--student", "qwen-99b"]) == 2
    assert "Valid students" in capsys.readouterr().err
    assert main(["card", "--student", "all", "--sft-dir", "x"]) == 2


def test_committed_model_cards_are_what_distill_card_writes(tmp_path, monkeypatch):
    """MODEL_CARDS/ is generated: the six cards equal `distill card --student all` run from the repo root
    (with no runs on disk, as in a fresh checkout). If this fails, regenerate them with that command."""
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    monkeypatch.chdir(tmp_path)
    assert main(["card", "--student", "all"]) == 0
    assert sorted(p.name for p in (tmp_path / "MODEL_CARDS").glob("*.md")) == sorted(f"{n}.md" for n in PAPER_STUDENTS)
    assert len(PAPER_STUDENTS) == 6
    for name in PAPER_STUDENTS:
        committed = REPO / "MODEL_CARDS" / f"{name}.md"
        assert committed.is_file(), f"{committed} missing: run `distill card --student all` at the repo root"
        assert committed.read_text() == (tmp_path / "MODEL_CARDS" / f"{name}.md").read_text(), (
            f"{committed} differs from what `distill card --student {name}` writes; regenerate it")


def test_lineage_reaches_every_shard_of_a_sharded_generate(tmp_path):
    """`distill generate --num-shards 2` writes no top-level run.json, one per job under runs/: the filter's
    input resolves to both shard runs rather than to nothing."""
    traces, data = tmp_path / "traces", tmp_path / "sft-data"
    for i in range(2):
        gen = RunRecord("generate", FakeConfig(note=f"shard {i}"))
        gen.counts["completions"] = 10 + i
        gen.write(traces / "runs" / f"shard-{i:05d}-of-00002")
    RunRecord("filter", FakeConfig(note="rejection sampling"), inputs={"traces[0]": traces}).write(data)
    node = trace_lineage(data)
    assert not node.unresolved
    assert [(how, n.stage, n.record["counts"]) for how, n in node.flatten()] == [
        ("start", "filter", {}),
        ("traces[0][shard-00000-of-00002]", "generate", {"completions": 10}),
        ("traces[0][shard-00001-of-00002]", "generate", {"completions": 11})]


@pytest.mark.parametrize("content", ['{"pass@1": "high"}', "[1, 2]", "\xff not json"])
def test_card_on_a_malformed_result_is_one_clear_error(chain, tmp_path, capsys, content):
    evals = tmp_path / "bad-eval"
    evals.mkdir()
    (evals / "results.json").write_bytes(content.encode("latin-1"))
    args = ["card", "--student", "qwen-7b", "--sft-dir", str(chain["model"]), "--eval-dir", str(evals),
            "--out", str(tmp_path / "cards")]
    assert main(args) == 2
    assert str(evals / "results.json") in capsys.readouterr().err


def test_a_run_json_that_is_not_a_mapping_reads_as_none(tmp_path):
    from distill.runinfo import read_run

    (tmp_path / "run.json").write_text("[1, 2]")
    assert read_run(tmp_path) is None
