"""distill eval without a model: crafted completions -> exact pass@1 / cons@n / pass@k, and clear input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from distill.cli import main
from distill.stages.evaluate.config import EvalConfig
from distill.stages.evaluate.harness import metric_list, task_config
from distill.stages.evaluate.hooks import keep_all_samples, load_docs, process_results
from distill.stages.evaluate.scoring import ProblemCompletions, score_problems, verify_problems
from distill.stages.evaluate.tasks import TASKS, eval_dir, get_task, task_yaml
from distill.verify import VerifySettings

B = "\\boxed"

# Three AIME problems, n = 4. Worked out by hand:
#   p1 (gold "025"): 25 ok, 025 ok, 24 wrong, no box          -> c=2; majority {25, 025} (2 votes) -> right
#   p2 (gold "7"):   3, 3, 7 ok, unfinished think with 7      -> c=1; majority 3 (2 votes)        -> wrong
#   p3 (gold "100"): 100 ok x3, 99                            -> c=3; majority 100                -> right
CRAFTED = [
    {"id": "p1", "answer": "025", "completions": [f"{B}{{25}}", f"so {B}{{025}}.", f"{B}{{24}}", "I give up"]},
    {"id": "p2", "answer": "7", "completions": [f"{B}{{3}}", f"<think>hm</think> {B}{{3}}", f"{B}{{7}}",
                                                f"<think>maybe {B}{{7}} but"]},
    {"id": "p3", "answer": "100", "completions": [f"{B}{{100}}"] * 3 + [f"{B}{{99}}"]},
]
# pass@2 per problem = 1 - C(n-c, 2) / C(4, 2): p1 1 - 1/6, p2 1 - 3/6, p3 1 (n - c < 2)
EXPECTED = {"pass@1": (2 / 4 + 1 / 4 + 3 / 4) / 3, "pass@2": (5 / 6 + 1 / 2 + 1) / 3, "pass@4": 1.0,
            "cons@4": 2 / 3, "n": 4, "num_problems": 3,
            "pass@1_stderr": 0.25 / math.sqrt(3)}   # per-problem means 0.5, 0.25, 0.75: stdev 0.25


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def rescore(tmp_path: Path, rows: list[dict], *extra: str, name: str = "out") -> tuple[int, Path]:
    f = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    out = tmp_path / name
    rc = main(["eval", "--task", "aime24", "--completions", str(f), "--out", str(out), "--verify-workers", "0",
               *extra])
    return rc, out


def test_crafted_completions_give_exactly_the_expected_metrics(tmp_path, capsys):
    rc, out = rescore(tmp_path, CRAFTED)
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    for key, value in EXPECTED.items():
        assert results[key] == pytest.approx(value), key
    assert results["complete"] is True and results["missing"] == []
    assert results["samples_scored"] == 12 and results["samples_dropped"] == 0
    assert results["status_counts"] == {"correct": 6, "incorrect": 4, "no_answer": 1, "unfinished": 1}

    samples = read_jsonl(out / "samples.jsonl")
    assert [(s["id"], s["sample"]) for s in samples][:4] == [("p1", 0), ("p1", 1), ("p1", 2), ("p1", 3)]
    assert [s["correct"] for s in samples] == [True, True, False, False, False, False, True, False,
                                               True, True, True, False]
    assert [s["extracted"] for s in samples[:4]] == ["25", "025", "24", None]
    assert samples[7]["status"] == "unfinished"          # a box inside unfinished reasoning does not count
    assert set(samples[0]) >= {"id", "sample", "extracted", "correct"}

    problems = {p["id"]: p for p in read_jsonl(out / "problems.jsonl")}
    assert (problems["p1"]["num_correct"], problems["p1"]["cons"]) == (2, True)
    assert (problems["p2"]["majority_answer"], problems["p2"]["cons"]) == ("3", False)
    assert problems["p3"]["majority_count"] == 3

    summary = (out / "summary.md").read_text()
    assert "| pass@1 | 50.0 ± 14.4" in summary and "| cons@4 | 66.7 |" in summary
    assert "| p2 | 7 | 1/4 | 3 (2) | no |" in summary
    run = json.loads((out / "run.json").read_text())
    assert run["stage"] == "eval" and run["status"] == "complete" and run["counts"]["cons@4"] == pytest.approx(2 / 3)
    assert "pass@1 50.0%" in capsys.readouterr().out


def test_samples_flag_caps_n_and_counts_what_it_drops(tmp_path):
    rc, out = rescore(tmp_path, CRAFTED, "--samples", "2")
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    # first two samples: p1 [T, T], p2 [F, F], p3 [T, T]
    assert results["pass@1"] == pytest.approx(2 / 3)
    assert results["cons@2"] == pytest.approx(2 / 3)
    assert results["samples_dropped"] == 6 and "pass@4" not in results


def test_fewer_samples_than_n_is_scored_explicitly_never_silently(tmp_path, capsys):
    rows = [dict(CRAFTED[0]), dict(CRAFTED[1], completions=CRAFTED[1]["completions"][:3]), dict(CRAFTED[2])]
    rc, out = rescore(tmp_path, rows, "--samples", "4")
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False
    assert results["missing"] == [{"id": "p2", "have": 3, "expected": 4}]
    assert results["samples_per_problem"] == {"min": 3, "max": 4}
    # p2 is scored on its 3 samples (1 correct), not padded with a wrong fourth
    assert results["pass@1"] == pytest.approx((2 / 4 + 1 / 3 + 3 / 4) / 3)
    assert "pass@4" not in results                      # pass@k only up to the smallest count
    assert "INCOMPLETE" in (out / "summary.md").read_text()
    assert "fewer than 4 samples" in capsys.readouterr().out


def test_math_mode_uses_math_verify_for_answers_and_majority(tmp_path):
    rows = [{"id": "a", "answer": "\\frac{1}{2}",
             "completions": [f"{B}{{0.5}}", f"{B}{{\\dfrac{{1}}{{2}}}}", f"{B}{{1/3}}", f"{B}{{\\frac{{1}}{{3}}}}"]}]
    f = write_jsonl(tmp_path / "m.jsonl", rows)
    rc = main(["eval", "--task", "math500", "--completions", str(f), "--out", str(tmp_path / "m")])
    assert rc == 0
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["pass@1"] == pytest.approx(0.5)
    assert results["verify_mode"] == "math"
    # 1/3 and \frac{1}{3} are one answer; the tie (2 vs 2) goes to the group seen first: 0.5 -> right
    (problem,) = read_jsonl(tmp_path / "m" / "problems.jsonl")
    assert problem["majority_count"] == 2 and problem["cons"] is True


@pytest.mark.parametrize("rows, message", [
    ([{"answer": "1", "completions": ["x"]}], ":1: no 'id'"),
    ([{"id": 1, "answer": "1", "completions": "x"}], "'completions' must be a list"),
    ([{"id": 1, "answer": "1", "completions": ["x", None]}], "completions[1] is NoneType"),
    ([{"id": 1, "answer": "1", "completions": ["x"]}, {"id": "1", "answer": "1", "completions": ["y"]}],
     "id '1' already appeared on line 1"),
    ([{"id": 1, "completions": ["x"]}], "has no 'answer'"),
    ([{"id": 1, "answer": "1/2", "completions": ["x"]}], "not an integer from 0 to 999"),
])
def test_bad_completion_files_are_errors_naming_the_line(tmp_path, capsys, rows, message):
    rc, _ = rescore(tmp_path, rows)
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_broken_json_line_is_an_error_not_a_skip(tmp_path, capsys):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(CRAFTED[0]) + "\n{not json\n" + json.dumps(CRAFTED[1]) + "\n")
    assert main(["eval", "--task", "aime24", "--completions", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "c.jsonl:2" in capsys.readouterr().err


def test_golds_from_data_file_by_id_and_mismatches_are_clear_errors(tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", [{"id": 60 + i, "problem": f"q{i}", "answer": a}
                                                 for i, a in enumerate(["025", "7", "100"])])
    rows = [{"id": 60 + i, "completions": r["completions"]} for i, r in enumerate(CRAFTED)]
    rc, out = rescore(tmp_path, rows, "--data-file", str(data))
    assert rc == 0
    assert json.loads((out / "results.json").read_text())["pass@1"] == pytest.approx(EXPECTED["pass@1"])
    assert [p["gold"] for p in read_jsonl(out / "problems.jsonl")] == ["025", "7", "100"]

    rc, _ = rescore(tmp_path, [*rows[:2], {"id": 99, "completions": ["x"]}], "--data-file", str(data), name="b")
    assert rc == 2 and "not in the data file: '99'" in capsys.readouterr().err
    rc, _ = rescore(tmp_path, rows[:2], "--data-file", str(data), name="c")
    assert rc == 2 and "no row for 1 of the 3 problems in the data file: '62'" in capsys.readouterr().err
    rc, _ = rescore(tmp_path, [dict(rows[0], answer="26"), *rows[1:]], "--data-file", str(data), name="d")
    assert rc == 2 and "has answer '26' but the data file says '025'" in capsys.readouterr().err
    # an answer that agrees in AIME terms ("25" vs "025") is fine; --limit scores only the first problems
    rc, out = rescore(tmp_path, [dict(rows[0], answer="25"), rows[1]], "--data-file", str(data), "--limit", "2",
                      name="e")
    assert rc == 0 and json.loads((out / "results.json").read_text())["num_problems"] == 2


def test_config_errors_exit_2_with_the_fix(tmp_path, capsys):
    assert main(["eval", "--task", "aime24"]) == 2
    assert "pass --model DIR_OR_HUB_ID" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--completions", "c.jsonl"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["eval", "--task", "custom", "--model", "m"]) == 2
    assert "--data-file" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--top-p", "0", "--print-config"]) == 2
    assert main(["eval", "--model", "m", "--max-tokens", "100", "--max-model-len", "50", "--print-config"]) == 2
    # a recipe's eval section may leave the model to a flag or a pipeline step
    recipe = tmp_path / "r.yaml"
    recipe.write_text("eval:\n  task: math500\n  samples: 64\n")
    assert main(["eval", "--recipe", str(recipe), "--print-config"]) == 0
    assert "samples: 64" in capsys.readouterr().out


def test_tasks_yaml_and_hooks_agree_with_the_registry():
    folder = eval_dir()
    assert (folder / "distill_tasks.py").is_file()
    for name, task in TASKS.items():
        text = task_yaml(task).read_text()
        assert f"task: {task.lm_eval_name}" in text and f"task: {name}" in text and "include:" in text
    assert get_task("aime24").mode == "aime" and get_task("math500").mode == "math"
    assert [m["metric"] for m in metric_list(5)] == ["pass@1", "cons@5", "pass@2", "pass@4", "pass@5"]
    assert [m["metric"] for m in metric_list(1)] == ["pass@1", "cons@1"]


def test_task_config_lays_the_run_over_the_yaml(tmp_path):
    cfg = EvalConfig(model="m", samples=8, max_tokens=64, force_think=True, data_file="d.jsonl", temperature=0.7)
    out = task_config(cfg, get_task("aime24"), 8, task_yaml(get_task("aime24")), prompt_has_think=True,
                      verify_mode="aime")
    assert out["repeats"] == 8 and out["task"] == "distill_aime24"
    assert out["generation_kwargs"] == {"until": [], "do_sample": True, "temperature": 0.7, "top_p": 0.95,
                                        "max_gen_toks": 64}
    assert out["gen_prefix"] == "<think>\n"
    assert out["dataset_kwargs"]["data_file"] == "d.jsonl" and out["dataset_kwargs"]["prompt_has_think"] is True
    assert [m["metric"] for m in out["metric_list"]][:2] == ["pass@1", "cons@8"]
    assert callable(out["process_results"]) and callable(out["custom_dataset"])
    assert "gen_prefix" not in task_config(EvalConfig(model="m"), get_task("aime24"), 16,
                                           task_yaml(get_task("aime24")), prompt_has_think=False,
                                           verify_mode="aime")


def test_hooks_score_a_document_like_the_rescoring(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "p1", "problem": "Find x.", "answer": "025"}])
    (doc,) = load_docs("aime24", str(data))
    assert doc["verify_mode"] == "aime" and doc["id"] == "p1"
    completions = CRAFTED[0]["completions"]
    filtered = keep_all_samples([completions], [doc])
    metrics = process_results(doc, filtered)
    problem = ProblemCompletions("p1", "025", completions)
    settings = VerifySettings(mode="aime", workers=0)
    scored = score_problems([problem], verify_problems([problem], settings), n=4, mode="aime")
    assert metrics == {k: pytest.approx(scored.results[k]) for k in ("pass@1", "cons@4", "pass@2", "pass@4")}


def test_data_without_gold_or_with_non_integer_aime_gold_fails_before_sampling(tmp_path):
    from distill.errors import DataError

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "problem": "q", "answer": "\\frac{1}{2}"}])
    with pytest.raises(DataError, match="problem 'x'.*--verify-mode math"):
        load_docs("aime24", str(bad))
    assert load_docs("aime24", str(bad), verify_mode="math")[0]["verify_mode"] == "math"
    none = write_jsonl(tmp_path / "none.jsonl", [{"id": "x", "problem": "q", "answer": None}])
    with pytest.raises(DataError, match="no gold answer"):
        load_docs("custom", str(none))


def test_problems_without_gold_are_left_out_and_recorded_not_a_failed_eval(tmp_path):
    from distill.cli import main

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [{"id": "a", "problem": "1+1?", "answer": "2"},
                                                           {"id": "b", "problem": "2+2?"}]))
    comps = tmp_path / "c.jsonl"
    comps.write_text("".join(json.dumps({"id": i, "completions": ["\\boxed{2}", "\\boxed{2}"]}) + "\n" for i in "ab"))
    out = tmp_path / "eval"
    assert main(["eval", "--task", "custom", "--completions", str(comps), "--data-file", str(data), "--out", str(out),
                 "--verify-workers", "0"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["num_problems"] == 1 and res["pass@1"] == 1.0 and res["skipped_without_gold"] == ["b"]
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": "x", "answer": "2", "completions": ["\\boxed{2}"]}) + "\n"
                    + json.dumps({"id": "y", "completions": ["\\boxed{3}"]}) + "\n")
    assert main(["eval", "--task", "aime24", "--completions", str(bare), "--out", str(tmp_path / "e2"),
                 "--verify-workers", "0"]) == 0
    assert json.loads((tmp_path / "e2" / "results.json").read_text())["skipped_without_gold"] == ["y"]
