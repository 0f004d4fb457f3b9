"""``distill pipeline --plan`` for ``opd`` steps: student + teacher memory per GPU, tokens and GPU-hours, offline.

The shapes come from :mod:`distill.students`: a model that another step of the recipe writes is followed back to
the registry row it was trained from (``sft``'s ``student``, or the model a ``grpo``/``opd`` step started from);
``opd.student_shape`` / ``opd.teacher_shape`` name the row when the model comes from outside the recipe.

Memory per training GPU, on top of :func:`distill.memory_plan.estimate_memory` for the student (its weights,
gradients, Adam states and activations under the step's strategy):

- logits: TRL's IW-OPD trainer materialises the ``(sequences, length, vocab)`` logits of both models, their
  log-softmax in fp32 and the per-token divergence: :data:`LOGIT_BYTES` bytes per position and vocabulary entry
  with an in-process teacher, :data:`LOGIT_BYTES_SERVER` with a served one (ours, from reading the loss code;
  not measured);
- the teacher's weights in bf16: sharded under zero3 (TRL prepares it with DeepSpeed) and fsdp (``distill opd``
  shards it as the student is: :func:`distill.stages.opd.trainer.shard_teacher`), whole on every GPU under ddp and
  zero2; none when served;
- vLLM colocated with training: ``vllm_gpu_memory_utilization`` of the card; with ``vllm_enable_sleep_mode`` the
  engine is asleep while the student trains, so the peak is the larger of the two phases, not their sum.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.memory_plan import estimate_memory
from distill.students import STUDENTS, TEACHERS, Student

GIB = 1 << 30
LOGIT_BYTES = 24          # student logits bf16 (2) + /T (2) + log-softmax fp32 (4) + its gradient (4) + teacher
                          # logits bf16 (2) + /T (2) + log-softmax fp32 (4) + the divergence fp32 (4)
LOGIT_BYTES_SERVER = 14   # the student's part (and the sparse top-1 terms)
SHARDED_TEACHER = ("zero3", "fsdp")    # the strategies under which the in-process teacher is sharded
ASSUMPTIONS = [
    f"opd: the trainer holds both models' full logits, about {LOGIT_BYTES} bytes per position per vocabulary entry "
    f"({LOGIT_BYTES_SERVER} with a served teacher; ours, from TRL's loss code); every sampled completion runs to "
    "max_completion_length; the teacher's forward costs 2 x its parameters FLOPs per token, the student's training "
    "8 x (with gradient checkpointing) at the SFT MFU; a served teacher's and a vLLM student server's GPUs are "
    "not counted",
]


def registry_shape(name: str) -> Student | None:
    """A registry row by student name, teacher hub id, or base-model hub id."""
    if name in STUDENTS:
        return STUDENTS[name]
    if name in TEACHERS:
        return TEACHERS[name]
    return next((s for s in STUDENTS.values() if s.base_model and s.base_model == name), None)


def traced_shape(model: str | None, steps: list[Any], hint: str = "") -> tuple[Student | None, str]:
    """``(shape, how it was found)`` of a model: the hint, the registry, or the recipe step that writes it."""
    if hint:
        return registry_shape(hint), f"shape {hint}"
    seen: set[str] = set()
    while model and model not in seen:
        seen.add(model)
        if (row := registry_shape(model)) is not None:
            return row, model
        step = next((s for s in steps if str(Path(s.out)) == str(Path(model))), None)
        if step is None:
            return None, model
        if step.stage == "sft":
            return STUDENTS.get(step.config.student), f"step {step.name}: {step.config.student}"
        source = {"grpo": "model", "opd": "student"}.get(step.stage)
        if source is None:
            return None, model
        model = getattr(step.config, source)
    return None, model or "?"


def check_opd(step: Any, steps: list[Any]) -> None:
    """Refuse what cannot run: a teacher of another tokenizer family, a context the student lacks."""
    cfg = step.config
    s, s_where = traced_shape(cfg.student, steps, cfg.student_shape)
    t, t_where = traced_shape(cfg.teacher, steps, cfg.teacher_shape)
    if s is not None and t is not None and (s.arch != t.arch or abs(s.vocab - t.vocab) > 1024):
        raise DistillError(
            f"step {step.name!r} (opd): student {s_where} is a {s.arch} model with {s.vocab:,} vocabulary rows, the "
            f"teacher {t_where} a {t.arch} with {t.vocab:,}: on-policy distillation needs one tokenizer. Pick a "
            "teacher of the student's family")
    needed = cfg.max_prompt_tokens + cfg.max_completion_length
    if cfg.vllm_max_model_length is not None and cfg.vllm_max_model_length < needed:
        raise DistillError(
            f"step {step.name!r} (opd): vllm_max_model_length {cfg.vllm_max_model_length} is shorter than "
            f"max_prompt_tokens + max_completion_length = {needed}: raise it or lower max_completion_length")
    sft = next((x for x in steps if x.stage == "sft" and str(Path(x.out)) == str(Path(cfg.student))), None)
    if sft is not None:
        from distill.stages.pipeline.plan import student_positions

        positions, where = student_positions(sft.config)
        if positions is not None and positions < needed:
            raise DistillError(
                f"step {sft.name!r} (sft) gives {sft.config.student} {positions} positions ({where}) but step "
                f"{step.name!r} (opd) samples max_prompt_tokens + max_completion_length = {needed}: lower "
                "opd.max_completion_length or extend the student's context")


def _memory(cfg: Any, s: Student, t: Student | None, gpu_gib: float) -> tuple[list[str], float, bool]:
    n = cfg.num_processes
    seq = cfg.max_prompt_tokens + cfg.max_completion_length
    mem = estimate_memory(s, strategy=cfg.strategy, num_gpus=n, seq_len=seq,
                          micro_batch=cfg.per_device_train_batch_size, checkpointing=cfg.gradient_checkpointing)
    states = mem.weights + mem.gradients + mem.optimizer + mem.gathered
    served = bool(cfg.teacher_server_url)
    logits = cfg.per_device_train_batch_size * seq * s.vocab * (LOGIT_BYTES_SERVER if served else LOGIT_BYTES)
    sharded = cfg.strategy in SHARDED_TEACHER
    teacher = 0.0 if served or t is None else 2 * t.num_parameters() / (n if sharded else 1)
    vllm = cfg.vllm_gpu_memory_utilization * gpu_gib * GIB if cfg.generation != "transformers" and \
        cfg.vllm_mode == "colocate" else 0.0
    train_peak = states + teacher + mem.activations + logits
    total = max(train_peak, states + teacher + vllm) if cfg.vllm_enable_sleep_mode else train_peak + vllm
    fits = total <= 0.95 * gpu_gib * GIB
    parts = (f"student states {states / GIB:.1f} + activations {mem.activations / GIB:.1f} + logits "
             f"{logits / GIB:.1f} ({cfg.per_device_train_batch_size} x {seq:,} positions x {s.vocab:,}) + teacher "
             + ("0 (served)" if served else f"{teacher / GIB:.1f} (bf16{', sharded' if sharded else ''})")
             + (f" + vLLM {vllm / GIB:.1f}" + (" (asleep while training: peak is the larger phase)"
                                               if cfg.vllm_enable_sleep_mode else "") if vllm else ""))
    line = (f"  memory per GPU      ~{total / GIB:.1f} GiB of {gpu_gib:g} -> {'fits' if fits else 'DOES NOT FIT'}: "
            + parts)
    return [line], total, fits


def opd_lines(step: Any, steps: list[Any], gpu_gib: float) -> tuple[list[str], float | None]:
    """The plan's lines for one opd step, and its GPU-hours (None when the shapes are unknown offline)."""
    from distill.stages.pipeline.plan import PEAK_BF16_FLOPS, SFT_MFU, vllm_estimate

    cfg = step.config
    s, s_where = traced_shape(cfg.student, steps, cfg.student_shape)
    t, t_where = traced_shape(cfg.teacher, steps, cfg.teacher_shape)
    teacher = f"{cfg.teacher} served at {cfg.teacher_server_url}" if cfg.teacher_server_url else cfg.teacher
    lines = [f"  model               student {cfg.student} ({s_where}) <- teacher {teacher} ({t_where}); beta "
             f"{cfg.beta:g}, lmbda {cfg.lmbda:g}"]
    if s is None:
        lines.append("  note: the student's shape is unknown offline: set opd.student_shape to its distill.students row")
        return lines, None
    n = cfg.num_processes
    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * n
    steps_n = cfg.max_steps if cfg.max_steps > 0 else (math.ceil(cfg.limit * cfg.num_train_epochs / batch)
                                                       if cfg.limit else None)
    engine = "vLLM" if cfg.generation != "transformers" else "transformers"
    lines.append(f"  GPUs                {n} (training; student sampled with {engine}"
                 + (f", colocated: {n // cfg.vllm_tensor_parallel_size} replica(s) x tensor parallel "
                    f"{cfg.vllm_tensor_parallel_size})" if engine == "vLLM" and cfg.vllm_mode == "colocate" else ")"))
    mem_lines, _, fits = _memory(cfg, s, t, gpu_gib)
    lines += mem_lines
    if not fits:
        lines.append("  note: does not fit: shard with strategy zero3 or fsdp, set vllm_enable_sleep_mode, serve the "
                     "teacher (teacher_server_url), or lower max_completion_length / per_device_train_batch_size")
    if steps_n is None:
        lines.append("  tokens              steps unknown offline (max_steps -1 and no limit): no GPU-hours")
        return lines, None
    sampled = steps_n * batch * cfg.lmbda * cfg.max_completion_length
    trained = steps_n * batch * (cfg.max_prompt_tokens + cfg.max_completion_length)
    lines.append(f"  tokens              {steps_n:,} steps x {batch} sequences: {sampled:,.0f} sampled (lmbda "
                 f"{cfg.lmbda:g}, upper bound), {trained:,.0f} trained")
    hours_sample = 0.0
    if engine == "vLLM":
        more, h = vllm_estimate(s, tp=cfg.vllm_tensor_parallel_size, dp=max(1, n // cfg.vllm_tensor_parallel_size),
                                util=cfg.vllm_gpu_memory_utilization, gpu_gib=gpu_gib, ctx=cfg.max_completion_length,
                                tokens=sampled, max_seqs=max(1, round(batch * cfg.lmbda / max(1, n // cfg.vllm_tensor_parallel_size))))
        lines += [m.replace("  GPU-hours           ", "  sampling GPU-hours ") for m in more
                  if not m.startswith(("  memory per GPU", "  GPUs"))]
        hours_sample = h or 0.0
    flops = 2 * s.num_parameters() * (4 if cfg.gradient_checkpointing else 3)
    if t is not None and not cfg.teacher_server_url:
        flops += 2 * t.num_parameters()
    hours_train = trained * flops / (SFT_MFU * PEAK_BF16_FLOPS) / 3600
    total = hours_sample + hours_train
    lines.append(f"  GPU-hours           ~{total:,.0f} (sampling ~{hours_sample:,.0f} + training ~{hours_train:,.0f}; "
                 f"{total / max(1, n):,.1f} h wall on {n} GPUs)")
    return lines, total
