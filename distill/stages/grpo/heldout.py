"""The periodic held-out eval of ``distill grpo``: pass@1 over n samples per problem, scored by distill.verify.

The paper's R1-Zero figure plots AIME pass@1 (mean over 16 samples) against RL steps; this is the same
measure on a small held-out set, cheap enough to run every few dozen steps. Samples come from the policy
being trained, through transformers' ``generate`` (also on GPU nodes where the rollouts use vLLM: the eval
set is small, and it keeps the eval independent of the rollout engine). The random state of training is
saved and restored around it, so a run with evals takes the same training steps as one without.

In a multi-process run every process generates its share of the problems (all processes run the same
number of batches, which ZeRO-3 needs) and the main process scores and writes the results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.metrics import score_samples
from distill.stages.grpo.data import prompt_ids
from distill.verify import verify_batch

if TYPE_CHECKING:
    from distill.verify import VerifySettings


@dataclass
class EvalSettings:
    samples: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 1024
    batch_size: int = 8
    seed: int = 0


def generate_samples(model: Any, tokenizer: Any, prompts: Sequence[Any], settings: EvalSettings, *,
                     seed: int) -> list[list[tuple[str, int, bool]]]:
    """``settings.samples`` completions per prompt as ``(text, completion_tokens, finished)``."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = _eos_ids(model, tokenizer)
    was_training = model.training
    model.eval()
    out: list[list[tuple[str, int, bool]]] = []
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(prompts), settings.batch_size):
                batch = [prompt_ids(tokenizer, p) for p in prompts[start:start + settings.batch_size]]
                width = max(len(ids) for ids in batch)
                input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
                mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
                gen = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True,
                                     temperature=settings.temperature, top_p=settings.top_p, top_k=0,
                                     max_new_tokens=settings.max_new_tokens,
                                     num_return_sequences=settings.samples, pad_token_id=pad,
                                     eos_token_id=eos_ids, use_cache=True)
                new = gen[:, width:].tolist()
                for i in range(len(batch)):
                    samples = []
                    for seq in new[i * settings.samples:(i + 1) * settings.samples]:
                        finished = any(t in eos_ids for t in seq)
                        if finished:
                            seq = seq[: next(j for j, t in enumerate(seq) if t in eos_ids) + 1]
                        else:
                            seq = [t for t in seq if t != pad]
                        text = tokenizer.decode(seq, skip_special_tokens=True)
                        samples.append((text, len(seq), finished))
                    out.append(samples)
    finally:
        if was_training:
            model.train()
    return out


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def score(rows: Sequence[dict[str, Any]], samples: Sequence[Sequence[tuple[str, int, bool]]],
          settings: VerifySettings, *, prompt_has_think: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Verify every sample against its row's gold (a code row: run its program against the row's tests);
    return the summary and one record per sample."""

    flat = [(row, j, s) for row, ss in zip(rows, samples, strict=True) for j, s in enumerate(ss)]
    verdicts: list[Any] = [None] * len(flat)
    code = [i for i, (row, _, _) in enumerate(flat) if row.get("tests") is not None]
    math = [i for i, (row, _, _) in enumerate(flat) if row.get("tests") is None]
    if math:
        found = verify_batch([flat[i][2][0] for i in math], [str(flat[i][0]["answer"]) for i in math], settings,
                             prompt_has_think=prompt_has_think)
        for i, verdict in zip(math, found, strict=True):
            verdicts[i] = verdict
    for i, outcome in zip(code, _run_programs([flat[i] for i in code], prompt_has_think), strict=True):
        verdicts[i] = outcome
    records: list[dict[str, Any]] = []
    per_problem: dict[str, dict[str, Any]] = {}
    for (row, j, (text, n_tokens, finished)), verdict in zip(flat, verdicts, strict=True):
        records.append({"id": row["id"], "sample": j, "completion": text, "completion_tokens": n_tokens,
                        "finished": finished, **verdict.to_dict()})
        is_code = row.get("tests") is not None
        entry = per_problem.setdefault(row["id"], {"id": row["id"], "correct": [],
                                                   "answers": None if is_code else []})
        entry["correct"].append(bool(verdict.correct))
        if not is_code:
            entry["answers"].append(verdict.extracted)
    summary = score_samples(list(per_problem.values()))
    statuses: dict[str, int] = {}
    for rec in records:
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
    lengths = [rec["completion_tokens"] for rec in records]
    result = {
        "pass@1": summary["pass@1"],
        "pass@1_stderr": summary["pass@1_stderr"],
        "n": summary["n"],
        "num_problems": summary["num_problems"],
        "mean_completion_tokens": sum(lengths) / len(lengths) if lengths else 0.0,
        "finished_rate": sum(rec["finished"] for rec in records) / len(records) if records else 0.0,
        "statuses": statuses,
    }
    if f"cons@{summary['n']}" in summary:
        result[f"cons@{summary['n']}"] = summary[f"cons@{summary['n']}"]
    return result, records


@dataclass(frozen=True)
class CodeOutcome:
    """A code sample's verdict in the shape :func:`score` reads (a program has no answer: no cons@n)."""

    status: str
    detail: str = ""
    extracted: None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "extracted": None, "gold": "tests", "detail": self.detail}


def _run_programs(items: Sequence[tuple[dict[str, Any], int, tuple[str, int, bool]]],
                  prompt_has_think: bool) -> list[CodeOutcome]:
    """Code rows: the program of each sample (the last fenced block after ``</think>``, as the ``code`` reward
    reads it) run against the row's tests in the sandbox."""
    if not items:
        return []
    import json

    from distill.verify import extract_program, split_think, verify_code_batch

    programs = []
    for _, _, (text, _, _) in items:
        parts = split_think(text, prompt_has_think=prompt_has_think)
        programs.append(extract_program(parts.answer) if parts.finished else None)
    found = verify_code_batch(programs, [json.loads(row["tests"]) for row, _, _ in items], fail_fast=True)
    return [CodeOutcome(v.status, v.detail) for v in found]


class HeldOutEval:
    """Runs the eval on the current policy; the caller decides when and writes the results."""

    def __init__(self, rows: Sequence[dict[str, Any]], tokenizer: Any, settings: EvalSettings,
                 verify: VerifySettings, *, prompt_has_think: bool = False, rank: int = 0, world: int = 1):
        """``verify`` and ``prompt_has_think``: how samples are verified (the accuracy reward's own settings)."""
        self.rows = list(rows)
        self.tokenizer = tokenizer
        self.settings = settings
        self.verify, self.prompt_has_think = verify, prompt_has_think
        self.rank, self.world = rank, world

    def shard(self) -> list[int]:
        """This process's row indices; padded by wrapping around so every process runs as many batches."""
        n = len(self.rows)
        per = -(-n // self.world)
        padded = [i % n for i in range(per * self.world)]
        return padded[self.rank::self.world]

    def run(self, model: Any, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Generate and score; returns ``(summary, records)`` on the main process, None on the others."""
        from accelerate.utils import gather_object

        start = time.time()
        mine = self.shard()
        samples = generate_samples(model, self.tokenizer, [self.rows[i]["prompt"] for i in mine], self.settings,
                                   seed=self.settings.seed + step + 1000 * self.rank)
        gathered = gather_object([(i, s) for i, s in zip(mine, samples, strict=True)]) if self.world > 1 else \
            list(zip(mine, samples, strict=True))
        if self.rank != 0:
            return None
        by_index: dict[int, list[tuple[str, int, bool]]] = {}
        for i, s in gathered:
            by_index.setdefault(i, s)
        order = sorted(by_index)
        summary, records = score([self.rows[i] for i in order], [by_index[i] for i in order], self.verify,
                                 prompt_has_think=self.prompt_has_think)
        summary = {"step": step, **summary, "eval_time_s": round(time.time() - start, 3)}
        return summary, records
