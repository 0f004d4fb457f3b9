"""TRL's ``IWOPDTrainer`` (JSD mode) with what ``distill opd`` needs around it, and nothing changed in its loss.

Only the training code imports this module (it imports TRL's experimental package at module level). Five things
differ from the trainer as TRL 1.16 ships it, each for a reason found by running it:

- **Data order that resumes.** TRL repeats each collated generation batch with a wrapper around the dataloader;
  ``Trainer``'s mid-epoch resume cannot skip through that wrapper (with gradient accumulation it skipped the rest of
  the epoch and trained 0 more steps). Here the repeat happens in the sampler, as in TRL's stable
  ``DistillationTrainer`` and ``GRPOTrainer``, so ``resume_from_checkpoint`` continues at the same step and batch.
- **Loss normalisation.** TRL's trainer divides the summed per-token divergence by ``num_items_in_batch``, which
  ``Trainer`` counts from the dataloader's labels *before* the student samples its completions: a prompt-only row
  has none (a division by zero), an off-policy row counts the trace, not the sample. Here each micro-batch's
  divergence is its mean over its own completion tokens (TRL's ``batchmean`` path, ``num_items_in_batch=None``),
  and ``Trainer`` averages the micro-batches of an optimizer step (``loss_is_scaled_for_ga = False``).
- **Metrics TRL does not log:** the mean log-probability the student and the teacher give the sampled tokens (their
  difference is the sampled-token estimate of the per-token reverse KL), and the accuracy of the student's
  on-policy samples against the gold answers (:mod:`distill.verify`).
- **CPU ranks shard.** Launched with an FSDP or DeepSpeed config, CPU ranks get the plugin accelerate 1.15 drops for
  them (:func:`distill.launch.adopt_cpu_sharding`), so ``--strategy fsdp`` on CPU is FSDP, as on GPUs, not DDP.
- **The teacher is sharded under FSDP** as the student is, and is the real one on every rank under CPU-RAM-efficient
  loading (:func:`shard_teacher`); TRL leaves it whole and unmoved there, zeros on every rank but 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")   # the stage's docstring and README say it is experimental

import torch  # noqa: E402
from trl.experimental.iw_opd import IWOPDTrainer  # noqa: E402
from trl.trainer.utils import RepeatSampler  # noqa: E402

from distill.launch import ShardsCpuRanks, held_unless_fsdp, shard_frozen  # noqa: E402
from distill.stages.opd.data import prompt_key  # noqa: E402

Scorer = Callable[[list[str], list[str | None]], list[float | None]]
CHUNK = 512      # positions per log-softmax when measuring log-probabilities (bounds the extra memory)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log p(token)`` at each position under ``softmax(logits / temperature)``, in chunks of positions.

    >>> lp = token_logprobs(torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]), 1.0)
    >>> [round(x, 4) for x in lp[0].tolist()]
    [-1.3863, -1.3863, -1.3863]
    """
    out = []
    for start in range(0, logits.shape[1], CHUNK):
        chunk = logits[:, start:start + CHUNK].float() / temperature
        picked = chunk.gather(-1, tokens[:, start:start + CHUNK].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(chunk, dim=-1))
    return torch.cat(out, dim=1) if out else logits.new_zeros(tokens.shape, dtype=torch.float32)


def shard_teacher(trainer: Any) -> str:
    """Hold the in-process teacher as the student is held, and say how: ``served``, ``whole`` (one process, DDP,
    ZeRO-2), ``sharded (ZeRO-3)``, or sharded under FSDP (:func:`distill.launch.shard_frozen`).

    TRL prepares the teacher with DeepSpeed under ZeRO-3, else with ``accelerator.prepare_model(teacher,
    evaluation_mode=True)``, which under FSDP neither shards nor moves it: every GPU held the whole frozen teacher
    (a 32B teacher's 61 GiB in bf16 beside a 7B student) where it was loaded (the CPU:
    :func:`distill.launch.per_rank_placement`), and with ``fsdp_cpu_ram_efficient_loading`` every rank but 0 scored
    the student's samples with a teacher of zeros (on 2 CPU ranks, teacher log-probability -7.08 where the real
    teacher's is -7.22; ``tests/test_opd.py``)."""
    teacher = getattr(trainer, "teacher_model", None)
    if teacher is None:
        return "served"
    if not getattr(trainer, "is_fsdp_enabled", False):
        return held_unless_fsdp(trainer)
    trainer.teacher_model, held = shard_frozen(trainer.accelerator.unwrap_model(teacher), trainer.accelerator)
    return held


class OPDTrainer(ShardsCpuRanks, IWOPDTrainer):
    """``IWOPDTrainer`` with a resumable data order, per-micro-batch loss normalisation and extra metrics."""

    loss_is_scaled_for_ga = False  # type: ignore[assignment]  # TRL's base declares it None; transformers: bool

    def __init__(self, *args: Any, golds: dict[str, str] | None = None, scorer: Scorer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher_held = shard_teacher(self)
        self._golds = golds or {}
        self._scorer = scorer
        self._teacher_seen: Any = None

    # ------------------------------------------------------------------ data order (see the module docstring)
    def _get_train_sampler(self, dataset: Any = None) -> Any:
        args: Any = self.args
        source: Any = self.train_dataset if dataset is None else dataset
        return RepeatSampler(data_source=source, mini_repeat_count=self.num_generations,
                             batch_size=args.generation_batch_size * self.accelerator.num_processes,
                             repeat_count=args.gradient_accumulation_steps, shuffle=True, seed=args.seed)

    def get_train_dataloader(self) -> Any:
        if self.train_dataset is None:
            raise ValueError("Trainer: training requires a train_dataset.")
        return self._get_dataloader(dataset=self.train_dataset, description="Training",
                                    batch_size=self._train_batch_size * self.args.gradient_accumulation_steps,
                                    sampler_fn=self._get_train_sampler, is_training=True)

    # ------------------------------------------------------------------ what the teacher said (kept for metrics)
    def _get_teacher_logits(self, inputs: dict[str, Any]) -> torch.Tensor:
        logits = super()._get_teacher_logits(inputs)
        self._teacher_seen = logits
        return logits

    def _get_teacher_token_logprobs_from_server(self, inputs: dict[str, Any], aligned_prompt_length: int) -> Any:
        result = super()._get_teacher_token_logprobs_from_server(inputs, aligned_prompt_length)
        self._teacher_seen = result
        return result

    # ------------------------------------------------------------------ loss (TRL's) + log-probability metrics
    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        self._teacher_seen = None
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=None)
        model_: Any = self.model
        if model_.training:
            self._log_logprobs(inputs, outputs.logits)
        self._teacher_seen = None
        return (loss, outputs) if return_outputs else loss

    def _slice_on_policy(self) -> bool:
        flags = self._buffered_on_policy_flags
        index = (self._buffer_step - 1) % self.args.gradient_accumulation_steps
        return bool(flags is not None and index < len(flags) and flags[index])

    @torch.no_grad()
    def _log_logprobs(self, inputs: dict[str, Any], logits: torch.Tensor) -> None:
        start = self._compute_prompt_length(inputs)
        tokens = inputs["input_ids"][:, start:]
        mask = (inputs["labels"][:, start:] != -100).float()
        student = token_logprobs(logits[:, start - 1:-1], tokens, self.temperature)
        seen = self._teacher_seen
        if isinstance(seen, torch.Tensor):
            teacher = token_logprobs(seen[:, start - 1:-1], tokens, self.temperature)
        elif isinstance(seen, dict):                       # server: the sampled tokens' logprobs, maybe fewer columns
            teacher = seen["actual_logprobs"].to(student.device)
            width = teacher.shape[1]
            student, mask = student[:, :width], mask[:, :width]
            teacher = torch.where(mask.bool(), teacher, torch.zeros_like(teacher))
        else:
            return
        sums = torch.stack([(student * mask).sum(), (teacher * mask).sum(), mask.sum()]).to(self.accelerator.device)
        s_sum, t_sum, n = self.accelerator.gather(sums.unsqueeze(0)).sum(0).tolist()
        if n:
            prefix = "on_policy" if self._slice_on_policy() else "off_policy"
            self._metrics["train"][f"{prefix}/student_logprob"].append(s_sum / n)
            self._metrics["train"][f"{prefix}/teacher_logprob"].append(t_sum / n)

    # ------------------------------------------------------------------ accuracy of the student's own samples
    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._scorer is not None and self._golds and self._slice_on_policy():
            index = (self._buffer_step - 1) % self.args.gradient_accumulation_steps
            logged = self._buffered_text_logs[index] if self._buffered_text_logs else None
            prompts: list[str] = list(logged[0]) if logged is not None else []
            completions: list[str] = list(logged[1]) if logged is not None else []
            rewards = self._scorer(completions, [self._golds.get(prompt_key(p)) for p in prompts])
            scored = [r for r in rewards if r is not None]
            local = torch.tensor([[sum(scored), len(scored)]], dtype=torch.float32, device=self.accelerator.device)
            total, count = self.accelerator.gather(local).sum(0).tolist()
            if count:
                self._metrics["train"]["on_policy/accuracy"].append(total / count)
        return loss
