"""``distill filter``: a crafted traces folder with known verdicts and faults gives exactly the expected rows.

The traces are written here (rows matching ``distill.data.traces.TRACE_FIELDS``), so these tests do not
depend on ``distill generate``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.errors import ConfigError, DataError, DistillError
from distill.stages.filter.config import FilterConfig
from distill.stages.filter.rules import FilterContext, completeness, readability
from distill.stages.filter.trace import prepare

SHARD = "shard-00000-of-00001.jsonl"
CLEAN = (
    "First we add the two numbers together and write down the partial result.\n\n"
    "Then we check the result carefully against the original question, and it holds."
)
ANSWER = "The answer is $\\boxed{4}$."
EVAL_PROBLEM = (
    "Find the number of ordered pairs of positive integers whose product equals seven hundred twenty "
    "and whose sum is even."
)


def completion(reasoning: str, answer: str = ANSWER) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def row(
    pid: str,
    sample: int,
    text: str,
    *,
    verdict: str | None = "correct",
    gold: str | None = "4",
    finish: str = "stop",
    tokens: int = 100,
    problem: str | None = None,
    teacher: str = "teacher-a",
) -> dict:
    return {
        "id": pid,
        "sample": sample,
        "problem": problem or f"What is problem {pid}?",
        "prompt": f"<|user|>What is problem {pid}?\n<|assistant|>",
        "completion": text,
        "reasoning": None,
        "answer_text": None,
        "final_answer": None,
        "verdict": verdict,
        "gold": gold,
        "prompt_tokens": 20,
        "completion_tokens": tokens,
        "finish_reason": finish,
        "teacher": teacher,
        "engine": "test",
        "sampling": {"temperature": 0.6},
        "seed": 0,
    }


ENGLISH_150 = " ".join(["we add the numbers and then check the result once more"] * 14)
LONG_PARAGRAPH = " ".join(f"step {i} gives value {i * i} so we continue." for i in range(120))
LOOP = "wait let me check the sum again. " * 40


def crafted_rows() -> list[dict]:
    """Each row's fate is fixed: see EXPECTED_FIRST below."""
    return [
        row("p1", 0, completion(CLEAN)),  # kept
        row("p1", 1, completion(CLEAN + "\n\nSo it is five.", "So $\\boxed{5}$."), verdict="incorrect"),
        row("p1", 2, "<think>\nFirst we add the two numbers", verdict="unfinished", finish="length"),
        row("p1", 3, completion(CLEAN)),  # exact duplicate of s0
        row("p1", 4, completion(CLEAN.upper().replace(" ", "   "), ANSWER.replace(" ", "  "))),  # normalised dup
        row("p2", 0, completion(CLEAN + "\n\n```python\nprint(2 + 2)\n```")),
        row("p2", 1, completion(ENGLISH_150 + ".\n\n我们计算。")),  # one Chinese paragraph
        row("p2", 2, completion("我们先把两个数相加，然后检查结果，结果是四。所以答案是四。 We add.")),
        row("p2", 3, completion(LONG_PARAGRAPH)),
        row("p2", 4, completion(LOOP)),
        row("p3", 0, completion(CLEAN, "So $\\boxed{12}$."), gold="12", tokens=2000),  # too long
        row("p3", 1, completion(CLEAN, "So $\\boxed{12}$."), gold="12", verdict=None),  # re-verified: correct
        row("p3", 2, completion(CLEAN, "So $\\boxed{13}$."), gold="12", verdict=None),  # re-verified: incorrect
        row("p4", 0, completion(CLEAN), problem=EVAL_PROBLEM),  # contaminated
        row("p4", 1, completion(CLEAN + "\n\nDone."), problem=EVAL_PROBLEM),
        row("p5", 0, completion(CLEAN, "I think it is four."), verdict="no_answer"),
        row("p5", 1, completion(CLEAN + "\n\nHmm."), verdict="timeout"),
        row("p6", 0, completion(CLEAN, "So $\\boxed{\\frac{}{}}$."), verdict="unparsable"),
    ]


def write_shard(folder: Path, rows: list[dict], *, corrupt: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if corrupt:
        lines.insert(2, '{"id": "p9", "sample": 0, "completion": "<think>broken')  # line 3: not JSON
        missing = row("p9", 1, completion(CLEAN))
        del missing["completion"]
        lines.insert(5, json.dumps(missing))  # line 6: no completion
    text = "\n".join(lines) + "\n"
    if corrupt:
        text += '{"id": "p9", "sample": 2, "compl'  # interrupted last write
    path = folder / SHARD
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "my_eval.jsonl"
    path.write_text(
        json.dumps({"id": "e1", "problem": EVAL_PROBLEM, "answer": "12"})
        + "\n"
        + json.dumps(
            {
                "id": "e2",
                "problem": "Compute the remainder when two to the hundredth power is divided by seven.",
                "answer": "2",
            }
        )
        + "\n"
    )
    return path


def base_args(traces: list[Path], out: Path, eval_file: Path) -> list[str]:
    return [
        "filter",
        "--traces",
        *map(str, traces),
        "--out",
        str(out),
        "--decontaminate-files",
        str(eval_file),
        "--max-tokens",
        "1000",
        "--workers",
        "1",
        "--verify-workers",
        "0",
    ]


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory, eval_file):
    """Run ``distill filter`` through the CLI once on the crafted folder (with corrupt lines)."""
    root = tmp_path_factory.mktemp("crafted")
    shard = write_shard(root / "traces", crafted_rows(), corrupt=True)
    out = root / "sft"
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        code = main(base_args([root / "traces"], out, eval_file))
    return {
        "code": code,
        "out": out,
        "shard": shard,
        "stdout": buf_out.getvalue(),
        "stderr": buf_err.getvalue(),
        "stats": json.loads((out / "filter_stats.json").read_text()) if (out / "filter_stats.json").exists() else None,
        "eval_file": eval_file,
    }


def test_crafted_folder_keeps_exactly_the_expected_rows(crafted_run):
    import datasets

    assert crafted_run["code"] == 0, crafted_run["stderr"]
    ds = datasets.load_from_disk(str(crafted_run["out"]))
    assert isinstance(ds, datasets.Dataset)
    assert sorted((r["id"], r["sample"]) for r in ds) == [("p1", 0), ("p3", 1)]
    assert set(ds.column_names) == {"messages", "id", "sample", "source", "teacher", "num_tokens"}
    first = next(r for r in ds if r["id"] == "p1")
    assert first["messages"][0] == {
        "role": "user",
        "content": "What is problem p1?\nPlease reason step by step, "
        "and put your final answer within \\boxed{}.",
    }
    assert first["messages"][1]["role"] == "assistant"
    assert first["messages"][1]["content"] == f"<think>\n{CLEAN}\n</think>\n\n{ANSWER}"
    assert first["teacher"] == "teacher-a" and first["num_tokens"] == 100


def test_crafted_folder_drop_counts(crafted_run):
    stats = crafted_run["stats"]
    eval_src = str(crafted_run["eval_file"])
    assert stats["rows_in"] == 18 and stats["rows_kept"] == 2
    assert stats["drops_first"] == {
        "correctness:incorrect": 2,
        f"decontamination:{eval_src}": 2,
        "completeness:not_stopped:length": 1,
        "completeness:no_final_answer": 1,
        "correctness:timeout": 1,
        "correctness:unparsable": 1,
        "readability:code_block": 1,
        "readability:mixed_language": 1,
        "readability:language_consistency": 1,
        "readability:long_paragraph": 1,
        "readability:repetition": 1,
        "length:too_long": 1,
        "dedup:exact": 1,
        "dedup:normalized": 1,
    }
    assert stats["drops_first_by_filter"] == {
        "decontamination": 2,
        "completeness": 2,
        "correctness": 4,
        "readability": 5,
        "length": 1,
        "dedup": 2,
    }
    # Every failing filter: the unfinished and the no-answer rows also fail correctness.
    assert stats["failing_by_filter"]["correctness"] == 6
    assert stats["failing"]["correctness:unfinished"] == 1 and stats["failing"]["correctness:no_answer"] == 1
    assert sum(stats["drops_first"].values()) == stats["rows_in"] - stats["rows_kept"]
    assert stats["problems_in"] == 6 and stats["problems_kept"] == 2
    assert stats["problems_with_nothing_kept"] == ["p2", "p4", "p5", "p6"]
    assert stats["pass_rate_per_problem"]["p1"] == 0.2 and stats["pass_rate_per_problem"]["p3"] == pytest.approx(
        1 / 3, abs=1e-4
    )
    assert stats["verification"]["verified"] == 2  # the two rows that had a gold but no verdict
    assert stats["decontamination"]["contaminated_problems"] == {"p4": f"{eval_src}#e1"}
    assert stats["decontamination"]["sets"] == [{"source": eval_src, "problems": 2}]


def test_corrupt_lines_are_reported_with_file_and_line(crafted_run):
    shard = str(crafted_run["shard"])
    bad = crafted_run["stats"]["bad_lines"]
    assert len(bad) == 3
    assert bad[0].startswith(f"{shard}:3: not valid JSON")
    assert bad[1] == f"{shard}:6: missing field(s) completion"
    assert bad[2].startswith(f"{shard}:21: partial last line")
    assert "3 bad line(s) skipped" in crafted_run["stdout"]
    assert f"{shard}:3" in crafted_run["stdout"]


def test_outputs_beside_the_dataset(crafted_run):
    import pyarrow.parquet as pq

    out = crafted_run["out"]
    run = json.loads((out / "run.json").read_text())
    assert run["stage"] == "filter" and run["status"] == "complete"
    assert run["inputs"]["traces[0]"]["path"].endswith("traces") and run["counts"]["rows_kept"] == 2
    table = pq.read_table(out / "parquet" / "train.parquet").to_pylist()
    assert sorted((r["id"], r["sample"]) for r in table) == [("p1", 0), ("p3", 1)]
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 16
    p5 = next(d for d in dropped if (d["id"], d["sample"]) == ("p5", 0))
    assert p5["failures"] == ["completeness:no_final_answer", "correctness:no_answer"]
    assert (out / "lengths.png").read_bytes()[:4] == b"\x89PNG"
    assert not any(p.name.endswith(".partial") for p in out.parent.iterdir())
    assert "problems: 6 in, 2 with a kept trace, 4 with nothing kept: p2, p4, p5, p6" in crafted_run["stdout"]


def test_output_trains_a_tiny_student_with_sfttrainer(crafted_run, tiny_qwen, tmp_path):
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    ds = datasets.load_from_disk(str(crafted_run["out"]))
    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
        bf16=False,
        max_length=256,
        assistant_only_loss=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        gradient_checkpointing=False,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    real = batch["input_ids"][0] != tok.pad_token_id
    trained = batch["labels"][0][real] != -100
    assert trained.any(), "assistant-only loss masked every token"
    assert not trained.all(), "the user turn is trained too: assistant_only_loss did not take effect"
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(0 < loss < 100 for loss in losses)


# ---------------------------------------------------------------- errors on bad input


def test_traces_without_gold_make_correctness_an_error(tmp_path, eval_file):
    from distill.stages.filter.stage import run

    rows = [
        row("q1", 0, completion(CLEAN), verdict=None, gold=None),
        row("q2", 0, completion(CLEAN), verdict=None, gold=None),
    ]
    write_shard(tmp_path / "t", rows)
    cfg = FilterConfig(
        traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), decontaminate_files=[str(eval_file)], workers=1
    )
    with pytest.raises(DataError) as err:
        run(cfg)
    msg = str(err.value)
    assert "q1, q2" in msg and str(tmp_path / "t") in msg and "--no-correctness" in msg
    assert not (tmp_path / "o").exists()
    # Switched off, the same traces pass through.
    run(
        FilterConfig(
            traces=[str(tmp_path / "t")],
            out=str(tmp_path / "o"),
            decontaminate_files=[str(eval_file)],
            workers=1,
            correctness=False,
        )
    )
    assert json.loads((tmp_path / "o" / "filter_stats.json").read_text())["rows_kept"] == 2


def test_error_exit_code_and_message_through_the_cli(tmp_path, eval_file, capsys):
    write_shard(tmp_path / "t", [row("q1", 0, completion(CLEAN), verdict=None, gold=None)])
    code = main(base_args([tmp_path / "t"], tmp_path / "o", eval_file))
    assert code == 2
    err = capsys.readouterr().err
    assert "distill filter: error:" in err and "q1" in err and "Traceback" not in err


def test_unreachable_eval_sets_are_an_error_not_a_silent_pass(tmp_path, monkeypatch):
    from distill.stages.filter.stage import run

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    write_shard(tmp_path / "t", [row("q1", 0, completion(CLEAN))])
    cfg = FilterConfig(
        traces=[str(tmp_path / "t")],
        out=str(tmp_path / "o"),
        workers=1,
        decontaminate_datasets=["no-such-org/no-such-eval-set:test"],
    )
    with pytest.raises(DistillError) as err:
        run(cfg)
    msg = str(err.value)
    assert "no-such-org/no-such-eval-set" in msg and "--decontaminate-files" in msg and "--no-decontaminate" in msg
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(crafted_run, eval_file):
    from distill.stages.filter.stage import run

    cfg = FilterConfig(
        traces=[str(crafted_run["shard"].parent)],
        out=str(crafted_run["out"]),
        decontaminate_files=[str(eval_file)],
    )
    with pytest.raises(DistillError, match="--overwrite"):
        run(cfg)


def test_config_checks():
    with pytest.raises(ValueError, match="max_per_problem"):
        FilterConfig(select="shortest", max_per_problem=0)
    with pytest.raises(ValueError, match="validation_fraction"):
        FilterConfig(validation_fraction=1.0)
    with pytest.raises(ValueError, match="no-decontaminate"):
        FilterConfig(decontaminate_datasets=[])
    assert FilterConfig().push_to_hub is None  # never pushes unless asked
    from distill.stages.filter.stage import run

    with pytest.raises(ConfigError, match="--traces"):
        run(FilterConfig())


# ---------------------------------------------------------------- single filters


def _trace(text: str, **kw) -> object:
    return prepare(row("x", 0, text, **kw), index=0, folder="f")


def test_completeness_reasons():
    ctx = FilterContext(FilterConfig())
    assert completeness(_trace(completion(CLEAN)), ctx) is None
    assert completeness(_trace(completion(CLEAN), finish="length"), ctx) == "not_stopped:length"
    assert completeness(_trace("no think tags $\\boxed{4}$"), ctx) == "no_think_close"
    assert completeness(_trace(completion("")), ctx) == "empty_reasoning"
    assert completeness(_trace(completion(CLEAN, "")), ctx) == "empty_answer"
    assert completeness(_trace(completion(CLEAN, "four")), ctx) == "no_final_answer"
    relaxed = FilterContext(FilterConfig(require_stop=False, require_answer=False))
    assert completeness(_trace(completion(CLEAN, "four"), finish="length"), relaxed) is None


def test_prompt_that_opens_think_is_split_right():
    t = prepare(
        {
            "id": "a",
            "sample": 0,
            "problem": "q",
            "prompt": "<|assistant|><think>\n",
            "completion": "reasoning here\n</think>\n\n$\\boxed{1}$",
            "finish_reason": "stop",
        },
        index=0,
        folder="f",
    )
    assert t.reasoning == "reasoning here" and t.answer == "$\\boxed{1}$" and t.prompt_has_think


def test_readability_thresholds_switch_off():
    strict = FilterContext(FilterConfig())
    loose = FilterContext(
        FilterConfig(
            max_repetition=None,
            allow_code=True,
            max_paragraph_chars=None,
            min_language_consistency=None,
            min_paragraph_language_consistency=None,
        )
    )
    for text in (
        LOOP,
        LONG_PARAGRAPH,
        CLEAN + "\n\n```python\nprint(1)\n```",
        "我们先把两个数相加。 We add.",
    ):
        assert readability(_trace(completion(text)), strict) is not None
        assert readability(_trace(completion(text)), loose) is None
    zh = FilterContext(FilterConfig(language="zh"))
    assert readability(_trace(completion("我们先把两个数相加，然后检查结果。", "所以答案是 $\\boxed{4}$")), zh) is None


def test_mixed_teacher_folders_dedup_across_them(tmp_path, eval_file):
    from distill.stages.filter.stage import run

    write_shard(tmp_path / "a", [row("p1", 0, completion(CLEAN)), row("p1", 1, completion(CLEAN + "\n\nA."))])
    write_shard(
        tmp_path / "b",
        [
            row("p1", 0, completion(CLEAN), teacher="teacher-b"),
            row("p1", 1, completion(CLEAN + "\n\nB."), teacher="teacher-b"),
        ],
    )
    out = tmp_path / "o"
    run(
        FilterConfig(
            traces=[str(tmp_path / "a"), str(tmp_path / "b")],
            out=str(out),
            workers=1,
            decontaminate_files=[str(eval_file)],
            validation_fraction=0.0,
        )
    )
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["rows_kept"] == 3 and stats["drops_first"] == {"dedup:exact": 1}
    assert stats["teachers"] == {"teacher-a": {"in": 2, "kept": 2}, "teacher-b": {"in": 2, "kept": 1}}
    assert stats["folders"][str(tmp_path / "b")] == {"in": 2, "kept": 1}


def test_validation_split_holds_out_whole_problems(tmp_path, eval_file):
    import datasets

    from distill.stages.filter.stage import run

    rows = [row(f"v{i}", s, completion(f"{CLEAN}\n\nVariant {s}.")) for i in range(10) for s in range(2)]
    write_shard(tmp_path / "t", rows)
    out = tmp_path / "o"
    run(
        FilterConfig(
            traces=[str(tmp_path / "t")],
            out=str(out),
            workers=1,
            decontaminate_files=[str(eval_file)],
            validation_fraction=0.2,
            seed=3,
        )
    )
    dd = datasets.load_from_disk(str(out))
    assert set(dd) == {"train", "validation"}
    train_ids, val_ids = set(dd["train"]["id"]), set(dd["validation"]["id"])
    assert len(val_ids) == 2 and not train_ids & val_ids and len(dd["train"]) + len(dd["validation"]) == 20
    assert (out / "parquet" / "validation.parquet").is_file()


def test_student_tokenizer_counts_the_assistant_turn(tmp_path, eval_file, tiny_qwen):
    from transformers import AutoTokenizer

    from distill.stages.filter.stage import run

    long_text = " ".join(["carry the one and add the next column."] * 30)
    write_shard(tmp_path / "t", [row("t1", 0, completion(CLEAN), tokens=5), row("t2", 0, completion(long_text))])
    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    short_len = len(tok(f"<think>\n{CLEAN}\n</think>\n\n{ANSWER}", add_special_tokens=False)["input_ids"])
    long_len = len(tok(f"<think>\n{long_text}\n</think>\n\n{ANSWER}", add_special_tokens=False)["input_ids"])
    assert short_len < long_len
    out = tmp_path / "o"
    run(
        FilterConfig(
            traces=[str(tmp_path / "t")],
            out=str(out),
            workers=1,
            decontaminate_files=[str(eval_file)],
            tokenizer=str(tiny_qwen),
            max_tokens=(short_len + long_len) // 2,
            max_repetition=None,
        )
    )
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["drops_first"] == {"length:too_long": 1}
    assert stats["kept_tokens"]["max"] == short_len


def test_push_to_hub_only_when_asked(tmp_path, eval_file, monkeypatch):
    import datasets

    from distill.stages.filter.stage import run

    calls = []
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: calls.append((repo, kw)))
    write_shard(tmp_path / "t", [row("h1", 0, completion(CLEAN))])
    common = dict(traces=[str(tmp_path / "t")], decontaminate_files=[str(eval_file)], workers=1)
    run(FilterConfig(out=str(tmp_path / "a"), **common))
    assert calls == []
    run(FilterConfig(out=str(tmp_path / "b"), push_to_hub="someone/r1-sft", **common))
    assert calls == [("someone/r1-sft", {"private": True})]
    assert json.loads((tmp_path / "b" / "run.json").read_text())["pushed_to"] == "someone/r1-sft"


def test_interrupted_write_leaves_no_half_dataset(tmp_path, eval_file, monkeypatch):
    from distill.stages.filter import dataset as sft_dataset
    from distill.stages.filter.stage import run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sft_dataset, "save", interrupted)
    write_shard(tmp_path / "t", [row("h1", 0, completion(CLEAN))])
    with pytest.raises(KeyboardInterrupt):
        run(FilterConfig(traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), decontaminate_files=[str(eval_file)],
                         workers=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_rows_without_gold_are_reported_and_dropped_not_a_failed_run(tmp_path, eval_file, capsys):
    from distill.stages.filter.stage import run

    rows = [row("g1", 0, completion(CLEAN)), row("n1", 0, completion(CLEAN), gold=None, verdict=None),
            row("n1", 1, completion(CLEAN), gold=None, verdict=None)]
    write_shard(tmp_path / "t", rows)
    out = tmp_path / "o"
    run(FilterConfig(traces=[str(tmp_path / "t")], out=str(out), workers=1, decontaminate_files=[str(eval_file)],
                     verify_workers=0))
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["rows_kept"] == 1 and stats["drops_first"] == {"correctness:no_gold": 2}
    assert stats["golds"]["without_gold"] == ["n1"]
    assert "have no gold answer" in capsys.readouterr().out


def test_gold_majority_labels_problems_whose_samples_agree(tmp_path, eval_file):
    from distill.stages.filter.stage import run

    agree = [row("m1", s, completion(CLEAN, "So $\\boxed{4}$."), gold=None, verdict=None) for s in range(3)]
    agree.append(row("m1", 3, completion(CLEAN + "\n\nSo five.", "So $\\boxed{5}$."), gold=None, verdict=None))
    split = [row("m2", s, completion(CLEAN, f"So $\\boxed{{{s}}}$."), gold=None, verdict=None) for s in range(4)]
    write_shard(tmp_path / "t", agree + split)
    out = tmp_path / "o"
    run(FilterConfig(traces=[str(tmp_path / "t")], out=str(out), workers=1, decontaminate_files=[str(eval_file)],
                     verify_workers=0, gold="majority", majority_min=0.75, dedup=False))
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["golds"]["majority_labelled"] == ["m1"] and stats["golds"]["without_gold"] == ["m2"]
    assert stats["rows_kept"] == 3
    assert stats["drops_first"] == {"correctness:incorrect": 1, "correctness:no_gold": 4}


def test_a_german_problem_reads_its_numbers_with_a_decimal_comma(tmp_path, eval_file):
    from distill.stages.filter.stage import run

    problem = "Ein Liter Milch kostet 8 Euro. Wie viel kosten zwei Liter Milch, wenn jeder Liter gleich viel kostet?"
    rows = [row("de", 0, completion(CLEAN, "Also $\\boxed{16,00}$."), gold="16", verdict=None, problem=problem),
            row("en", 0, completion(CLEAN, "So $\\boxed{8.000}$."), gold="8", verdict=None)]
    write_shard(tmp_path / "t", rows)
    out = tmp_path / "o"
    run(FilterConfig(traces=[str(tmp_path / "t")], out=str(out), workers=1, decontaminate_files=[str(eval_file)],
                     verify_workers=0, readability=False))
    stats = json.loads((out / "filter_stats.json").read_text())
    assert stats["rows_kept"] == 2, stats["drops_first"]
