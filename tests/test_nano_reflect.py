"""The nano reflection task (recipes/nano-r1-zero.yaml): traces, the reflection detector, the language switch,
the GRPO watchers (counted, never rewarded), the report's R1-Zero section, and a tiny-step run of the recipe."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from distill.rewards import make_accuracy_reward, make_format_reward, make_language_consistency_reward
from distill.stages.grpo.metrics import metrics_row
from distill.stages.grpo.watch import build_watchers, shares
from distill.stages.nano_task.reflect import (
    CORRECTION_PATTERN,
    REFLECTION_PATTERN,
    has_correction,
    has_reflection,
    quick_guess,
    reflect_trace,
    warmup_trace,
)
from distill.stages.nano_task.task import column_lines
from distill.verify import VerifySettings, language_consistency, split_think

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "nano-r1-zero.yaml"


def _pairs(n: int = 300) -> list[tuple[int, int]]:
    rng = random.Random(7)
    return [(rng.randint(10, 999), rng.randint(10, 999)) for _ in range(n)]


def _carries(a: int, b: int) -> bool:
    return quick_guess(a, b) != a + b


def test_traces_are_well_formed_and_checks_are_right():
    accuracy = make_accuracy_reward(VerifySettings(workers=0))
    fmt = make_format_reward()
    pairs = _pairs()
    for check in (False, True):
        traces = [reflect_trace(a, b, check=check) for a, b in pairs]
        assert fmt(traces) == [1.0] * len(traces)
        got = accuracy(traces, answer=[str(a + b) for a, b in pairs])
        want = [1.0 if check or not _carries(a, b) else 0.0 for a, b in pairs]
        assert got == want
    a, b = 347, 586
    body = split_think(reflect_trace(a, b, check=True)).reasoning.strip().splitlines()
    # the quick pass goes from the left, so no column's carry is on the page before the column it would change
    assert body[:4] == ["3+5=8 -> 8", "4+8=12 -> 82", "7+6=13 -> 823", "Wait, let me check."]
    assert body[4:-1] == column_lines(a, b)           # the check is the arithmetic task's working, with carries


def test_the_guess_forgets_carries_and_the_check_corrects_it():
    pairs = _pairs()
    carrying = [p for p in pairs if _carries(*p)]
    assert 0.5 < len(carrying) / len(pairs) < 0.95      # most guesses slip: checking pays
    for a, b in pairs:
        trace = reflect_trace(a, b, check=True)
        assert has_reflection(trace)
        assert has_correction(trace) == _carries(a, b)
        assert trace.endswith(f"\\boxed{{{a + b}}}")
        assert not has_reflection(reflect_trace(a, b, check=False))
    assert quick_guess(95, 7) == 92 and quick_guess(999, 1) == 990


def test_warmup_rates_and_correctness():
    rng = random.Random(0)
    rows = [(a, b, *warmup_trace(a, b, rng, 0.25, 0.5)) for a, b in _pairs(2000)]
    checks = [r for r in rows if has_reflection(r[2])]
    assert 0.2 < len(checks) / len(rows) < 0.3
    switched = [r for r in checks if "等等" in r[2]]
    assert 0.4 < len(switched) / len(checks) < 0.6
    assert all(correct for *_, correct in checks)
    assert all(correct == (not _carries(a, b)) for a, b, trace, correct in rows if not has_reflection(trace))


def test_switched_traces_are_measured_as_mixed_by_the_project_measure():
    reward = make_language_consistency_reward(lang="en")
    english = [reflect_trace(a, b, check=c) for a, b in _pairs(20) for c in (False, True)]
    switched = [reflect_trace(a, b, check=True, switch=True) for a, b in _pairs(20)]
    assert reward(english) == [1.0] * len(english)
    assert all(r < 0.95 for r in reward(switched))
    assert all(language_consistency(split_think(t).reasoning, "en") < 0.95 for t in switched)


def test_recipe_watchers_are_the_task_detectors_and_count_shares():
    recipe = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    watch = recipe["grpo"]["watch"]
    assert watch["reflection"]["pattern"] == REFLECTION_PATTERN
    assert watch["correction"]["pattern"] == CORRECTION_PATTERN
    watchers = build_watchers(watch)
    texts = [reflect_trace(347, 586, check=False), reflect_trace(347, 586, check=True),
             reflect_trace(347, 586, check=True, switch=True), reflect_trace(12, 34, check=True)]
    assert shares(watchers, texts) == {"reflection": 0.75, "correction": 0.5, "mixed_language": 0.25}
    for trace in texts:                            # the watchers and the task's own detectors agree
        assert watchers[0].hit(trace) == has_reflection(trace) and watchers[1].hit(trace) == has_correction(trace)
    fn = watchers[0].reward_fn()
    assert fn.__name__ == "watch_reflection"
    assert fn([[{"role": "assistant", "content": t}] for t in texts], answer=["1"] * 4) == [0.0, 1.0, 1.0, 1.0]
    # Nothing in the recipe rewards length or reflection words: accuracy and format (and, in the ablation,
    # language consistency) only.
    assert set(recipe["grpo"]["rewards"]) == {"accuracy", "format"}
    lc = next(s for s in recipe["pipeline"]["steps"] if s["name"] == "grpo-lc")
    assert set(lc["set"]["rewards"]) == {"language_consistency"}


@pytest.mark.parametrize("bad", [{"x": {}}, {"x": {"pattern": "("}}, {"x": {"language": "klingon"}},
                                 {"x": {"pattern": "a", "language": "en"}}, {"x": {"language": "en", "below": 2}}])
def test_bad_watchers_are_refused_naming_them(bad):
    with pytest.raises(ValueError, match="watch 'x'"):
        build_watchers(bad)


def test_metrics_row_reads_watchers_as_shares_not_rewards():
    logs = {"reward": 1.1, "rewards/accuracy/mean": 0.5, "rewards/watch_reflection/mean": 0.25,
            "rewards/watch_reflection/std": 0.4, "completions/mean_length": 40.0}
    row = metrics_row(logs, step=3, time_s=1.0, labels=["accuracy"], accuracy_label="accuracy", format_label=None)
    assert row["watch/reflection"] == 0.25 and row["accuracy"] == 0.5 and row["completion_length"] == 40.0
    assert not any(k.startswith("reward/watch") for k in row)


def test_grpo_config_passes_watchers_with_weight_zero():
    from distill.stages.grpo.config import GRPOStageConfig
    from distill.stages.grpo.reward_setup import setup_rewards
    from distill.stages.grpo.trl_args import trl_kwargs

    recipe = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    cfg = GRPOStageConfig(model="m", dataset="d", template="chat", rewards=recipe["grpo"]["rewards"],
                          watch=recipe["grpo"]["watch"])
    setup = setup_rewards(cfg.rewards, max_completion_length=128)
    watchers = build_watchers(cfg.watch)
    kwargs = trl_kwargs(cfg, reward_weights=setup.weights + [0.0] * len(watchers), cuda=False, have_vllm=False)
    assert kwargs["reward_weights"] == [1.0, 0.1, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="watch 'bad'"):
        GRPOStageConfig(model="m", dataset="d", watch={"bad": {"pattern": "("}})


def _fake_grpo(tmp_path: Path, name: str, rewards: dict, mixed: float) -> SimpleNamespace:
    out = tmp_path / name
    (out / "eval").mkdir(parents=True)
    watch = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))["grpo"]["watch"]
    (out / "run.json").write_text(json.dumps({"stage": "grpo", "config": {"watch": watch}, "rewards": rewards}))
    metrics = [{"step": s, "completion_length": 20 + s, "watch/reflection": s / 40, "watch/correction": s / 80,
                "watch/mixed_language": mixed} for s in range(1, 41)]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    evals = [{"step": s, "pass@1": 0.3 + s / 100, "n": 16, "watch/reflection": s / 40, "watch/mixed_language": mixed}
             for s in (0, 20, 40)]
    (out / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    sample = {"id": "heldout-00003", "sample": 0, "completion": reflect_trace(347, 586, check=True),
              "status": "correct"}
    wrong = {**sample, "sample": 1, "status": "wrong"}
    (out / "eval" / "step-000040.jsonl").write_text(json.dumps(wrong) + "\n" + json.dumps(sample) + "\n")
    return SimpleNamespace(name=name, stage="grpo", out=out, config=SimpleNamespace(model="base"))


def test_report_section_plots_three_curves_quotes_a_fix_and_compares_runs(tmp_path):
    from distill.stages.pipeline.self_evolution import self_evolution_lines

    a = _fake_grpo(tmp_path, "grpo", {"accuracy": 1.0, "format": 0.1}, 0.2)
    b = _fake_grpo(tmp_path, "grpo-lc", {"accuracy": 1.0, "format": 0.1, "language_consistency": 1.0}, 0.0)
    ev = SimpleNamespace(name="eval-grpo", stage="eval", out=tmp_path / "eval-grpo", config=SimpleNamespace(model=a.out))
    ev.out.mkdir()
    (ev.out / "results.json").write_text(json.dumps({"pass@1": 0.5}))
    text = "\n".join(self_evolution_lines(tmp_path, [a, ev, b]))
    assert (tmp_path / "grpo-r1-zero.png").stat().st_size > 1000 and (tmp_path / "grpo-lc-r1-zero.png").is_file()
    assert "| held-out pass@1 (n=16, steps 0 → 40) | 30.0% | 70.0% |" in text
    assert "So the answer is 933, not 823." in text            # the quoted rollout: a correct self-correction
    assert "| grpo | accuracy (1), format (0.1) | 50.0% | 70.0% |" in text
    assert re.search(r"\| grpo-lc \| accuracy \(1\), format \(0\.1\), language_consistency \(1\) \| — \| 70\.0% \| "
                     r"0\.0% \|", text)
    assert self_evolution_lines(tmp_path, [ev]) == []


@pytest.mark.slow
def test_recipe_runs_through_distill_pipeline_in_tiny_steps(tmp_path):
    out = tmp_path / "r1z"
    sets = ["nano-task.train_problems=32", "nano-task.heldout_problems=8", "nano-task.warmup_examples=64",
            "tiny.layers=1", "sft.max_steps=4", "sft.save_steps=50", "eval.samples=2", "grpo.max_steps=2",
            "grpo.per_device_train_batch_size=8", "grpo.num_generations=4", "grpo.eval_problems=4",
            "grpo.eval_samples=2", "grpo.eval_every=1", "grpo.save_steps=2", "grpo.max_completion_length=32",
            "grpo.eval_max_new_tokens=32", "eval.max_tokens=32", "pipeline.check=[]"]
    cmd = [sys.executable, "-m", "distill", "pipeline", "--recipe", str(RECIPE), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("grpo", "grpo-lc"):
        rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all("watch/reflection" in r and "watch/mixed_language" in r for r in rows)
        evals = [json.loads(line) for line in (out / name / "eval.jsonl").read_text().splitlines()]
        assert [e["step"] for e in evals] == [0, 1, 2] and all("watch/correction" in e for e in evals)
    run = json.loads((out / "grpo-lc" / "run.json").read_text())
    assert run["rewards"] == {"accuracy": 1.0, "format": 0.1, "language_consistency": 1.0}
    assert run["watch"] == ["reflection", "correction", "mixed_language"]
    report = (out / "report.md").read_text()
    assert "## Self-evolution during GRPO" in report and "### The GRPO runs compared" in report
    assert (out / "grpo-r1-zero.png").is_file()
