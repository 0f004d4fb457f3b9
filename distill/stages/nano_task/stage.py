"""``distill nano-task``: write a nano task (train and held-out problems, a warm-up SFT set).

``--kind arithmetic`` (the nano recipe's): held-out pairs are drawn first and excluded from every other split,
so no training set contains them (neither ``a + b`` nor ``b + a``); validation pairs (for choosing
checkpoints) are drawn next and kept out of the training splits the same way, so selecting on them never
touches the held-out score.

``--kind code`` (recipes/nano-code.yaml): one-line functions and stdin/stdout programs
(:mod:`distill.stages.nano_task.code`); every (family, constant) is asked at most once across held-out,
validation, train and warm-up, in that order of drawing. Rows are ``{id, problem, tests, solution, source}``
(``solution``: the right program, for reference): no answer column, the tests are the reference (``distill generate``, ``grpo``'s ``code`` reward, ``filter`` and
``eval --task custom`` read them).

``--kind reflect`` (recipes/nano-r1-zero.yaml): the arithmetic problems, drawn the same way; the warm-up traces
add quickly, forgetting carries, and sometimes check (:mod:`distill.stages.nano_task.reflect`).

All write the same layout: ``train.jsonl``, ``heldout.jsonl``, ``validation.jsonl`` (when asked for),
``warmup/`` (a ``save_to_disk`` SFT dataset of ``messages``) and ``run.json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from distill.data.prompts import user_content
from distill.outdir import check_ours, prepare_out
from distill.runinfo import RunRecord
from distill.stages.nano_task.config import NanoTaskConfig
from distill.stages.nano_task.reflect import warmup_trace
from distill.stages.nano_task.task import problem_text, sample_pairs, slipped_trace


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def run(cfg: NanoTaskConfig) -> Path:
    import datasets

    check_ours(cfg.out, "nano-task")        # a rerun rewrites its own files; nobody else's
    out = prepare_out(cfg.out, "nano-task", overwrite=False)
    splits, warm, slipped = _code_task(cfg) if cfg.kind == "code" else _arithmetic_task(cfg)
    for name in ("train", "heldout"):
        _write_jsonl(out / f"{name}.jsonl", splits[name])
    validation_file = out / "validation.jsonl"
    if splits["validation"]:
        _write_jsonl(validation_file, splits["validation"])
    elif validation_file.exists():
        validation_file.unlink()  # from an earlier run with a validation split
    datasets.Dataset.from_list(warm).save_to_disk(str(out / "warmup"))
    record = RunRecord("nano-task", cfg)
    record.counts.update(train=len(splits["train"]), heldout=len(splits["heldout"]),
                         validation=len(splits["validation"]), warmup=len(warm), warmup_wrong=slipped)
    record.write(out)
    extra = f", {len(splits['validation'])} validation" if splits["validation"] else ""
    wrong = f" ({slipped} with a slip in the working)" if slipped else ""
    print(f"nano {cfg.kind} task: {len(splits['train'])} train, {len(splits['heldout'])} held-out{extra} problems, "
          f"{len(warm)} warm-up traces{wrong} -> {out}")
    return out


Splits = dict[str, list[dict[str, Any]]]


def _warm_row(i: int, problem: str, trace: str, correct: bool, source: str, *, code: bool = False) -> dict[str, Any]:
    return {"id": f"warmup-{i:05d}", "source": source, "teacher": "gold", "correct": correct,
            "messages": [{"role": "user", "content": user_content(problem, code=code)},
                         {"role": "assistant", "content": trace}]}


def _arithmetic_task(cfg: NanoTaskConfig) -> tuple[Splits, list[dict[str, Any]], int]:
    rng = random.Random(cfg.seed)
    used: set[tuple[int, int]] = set()

    def draw(n: int) -> list[tuple[int, int]]:
        return sample_pairs(n, cfg.min_value, cfg.max_value, rng, used, by_digits=cfg.operand_sampling == "digits")

    heldout = draw(cfg.heldout_problems)
    used |= {(b, a) for a, b in heldout}
    validation = draw(cfg.validation_problems)
    used |= {(b, a) for a, b in validation}
    train = draw(cfg.train_problems)
    warmup = draw(cfg.warmup_examples)

    def rows(pairs: list[tuple[int, int]], split: str) -> list[dict]:
        return [{"id": f"{split}-{i:05d}", "problem": problem_text(a, b), "answer": str(a + b), "source": "nano"}
                for i, (a, b) in enumerate(pairs)]

    slip_rng = random.Random(f"{cfg.seed}-slips")
    warm, slipped = [], 0
    for i, (a, b) in enumerate(warmup):
        if cfg.kind == "reflect":
            trace, correct = warmup_trace(a, b, slip_rng, cfg.warmup_check_rate, cfg.warmup_switch_rate)
        else:
            trace, correct = slipped_trace(a, b, slip_rng, cfg.warmup_slip_rate)
        slipped += not correct
        warm.append(_warm_row(i, problem_text(a, b), trace, correct, "nano-gold"))
    splits = {"train": rows(train, "train"), "heldout": rows(heldout, "heldout"),
              "validation": rows(validation, "validation")}
    return splits, warm, slipped


def _code_task(cfg: NanoTaskConfig) -> tuple[Splits, list[dict[str, Any]], int]:
    from distill.stages.nano_task.code import FAMILIES, code_problem, code_trace, universe

    rng = random.Random(f"{cfg.seed}-code")
    order = universe(cfg.min_value, cfg.max_value)
    rng.shuffle(order)
    counts = {"heldout": cfg.heldout_problems, "validation": cfg.validation_problems, "train": cfg.train_problems,
              "warmup": cfg.warmup_examples}
    drawn: dict[str, list[tuple[int, int]]] = {}
    start = 0
    for split, n in counts.items():
        drawn[split] = order[start:start + n]
        start += n
    tests_rng = random.Random(f"{cfg.seed}-tests")
    splits: Splits = {}
    for split in ("train", "heldout", "validation"):
        splits[split] = [{"id": f"{split}-{i:05d}", **code_problem(FAMILIES[f], k, tests_rng), "source": "nano-code"}
                         for i, (f, k) in enumerate(drawn[split])]
    slip_rng = random.Random(f"{cfg.seed}-slips")
    warm, slipped = [], 0
    for i, (f, k) in enumerate(drawn["warmup"]):
        trace, correct = code_trace(FAMILIES[f], k, slip_rng, cfg.warmup_slip_rate)
        slipped += not correct
        warm.append(_warm_row(i, code_problem(FAMILIES[f], k, tests_rng)["problem"], trace, correct,
                              "nano-code-gold", code=True))
    return splits, warm, slipped
