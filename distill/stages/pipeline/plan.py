"""``distill pipeline --plan``: every step of a recipe at the scale it names, with no weights and no GPU.

Per step: the model, GPUs, memory per GPU, tokens to process and GPU-hours. SFT memory comes from
:mod:`distill.memory_plan`; vLLM steps (generate, eval) from the model's shape (:mod:`distill.students`):
bf16 weights split over the tensor-parallel GPUs, the rest of ``gpu_memory_utilization`` for the KV cache.
Before printing, the plan refuses a run whose steps disagree (:func:`check_steps`): each refusal names both
steps and the fix. Every throughput figure rests on the assumptions in :data:`ASSUMPTIONS`, printed with it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError
from distill.memory_plan import format_plan, make_plan
from distill.models import model_positions
from distill.stages.pipeline.opd_plan import ASSUMPTIONS as OPD_ASSUMPTIONS
from distill.stages.pipeline.opd_plan import check_opd, opd_lines, traced_shape
from distill.students import STUDENTS, TEACHERS, Student, get_student

GIB = 1 << 30
PROMPT_TOKENS = 1024        # upper bound on a rendered prompt (chat template + problem + the paper's suffix)
HBM_BYTES_S = 3.35e12       # H100 SXM HBM3 bandwidth
BANDWIDTH_EFFICIENCY = 0.5  # share of that a vLLM decode step achieves
PEAK_BF16_FLOPS = 989e12    # H100 SXM dense bf16
SFT_MFU = 0.289             # README "At GPU scale": measured MFU of scripts/bench/sft.py on one H100
MAX_NUM_SEQS = 256          # vLLM's default max_num_seqs: sequences decoded at once per replica
KEEP_RATE = 0.5             # share of generated traces the filter keeps
MEAN_TRACE_FRACTION = 0.25  # a kept trace's mean length, as a share of generate's max_tokens
EVAL_PROBLEMS = {"aime24": 30, "aime25": 30, "math500": 500}
CPU_STAGES = ("tiny", "nano-task", "filter", "card")

ASSUMPTIONS = [
    f"prompts are at most {PROMPT_TOKENS} tokens (ours: AIME/MATH/NuminaMath problems + chat template are a few "
    "hundred)",
    f"GPU: H100 SXM 80 GB, {HBM_BYTES_S / 1e12:.2f} TB/s HBM3 and {PEAK_BF16_FLOPS / 1e12:.0f} TFLOPS dense bf16 "
    "(NVIDIA H100 datasheet)",
    f"vLLM decoding is memory-bound: a step reads the weights once plus every running sequence's KV cache at "
    f"{BANDWIDTH_EFFICIENCY:.0%} of peak bandwidth (ours, a roofline estimate), at most {MAX_NUM_SEQS} sequences "
    "per replica (vLLM's default max_num_seqs), each at the mean context prompt + max_tokens / 2",
    f"SFT runs at {SFT_MFU:.1%} MFU (README 'At GPU scale': scripts/bench/sft.py, sdpa, one H100), 8 x parameters "
    "FLOPs per token with gradient checkpointing (6 for forward + backward, 2 to recompute) plus attention",
    f"the filter keeps {KEEP_RATE:.0%} of the traces and a kept trace averages {MEAN_TRACE_FRACTION:.0%} of "
    "generate's max_tokens (ours, not measured: `distill sft --plan --dataset` counts a real dataset)",
    "token counts are upper bounds: every completion runs to max_tokens",
]


def _train_format(sft: Any) -> str:
    if sft.chat_format != "auto":
        return sft.chat_format
    return "chatml" if get_student(sft.student).arch == "qwen2" else "llama3"


def student_positions(sft: Any) -> tuple[int | None, str]:
    """Positions the trained student serves: its registry shape with the recipe's context extension."""
    config = get_student(sft.student).hf_config(rope_theta=sft.rope_theta,
                                                max_position_embeddings=sft.max_position_embeddings)
    return model_positions(config)


def _by_out(steps: list[Any], stage: str) -> dict[str, Any]:
    return {str(Path(s.out)): s for s in steps if s.stage == stage}


def _source(steps: list[Any], stage: str, path: str | None) -> Any:
    return _by_out(steps, stage).get(str(Path(path))) if path else None


def _trained_by(steps: list[Any], model: str | None) -> Any:
    """The sft step a model comes from: its own output, or the student an opd/grpo step of the recipe started from."""
    seen: set[str] = set()
    while model and model not in seen:
        seen.add(model)
        if (sft := _source(steps, "sft", model)) is not None:
            return sft
        step = _source(steps, "opd", model) or _source(steps, "grpo", model)
        model = None if step is None else (step.config.student if step.stage == "opd" else step.config.model)
    return None


def check_steps(steps: list[Any], gpus_per_node: int) -> None:
    """Refuse (DistillError) when two steps disagree; each message names both steps and the fix."""
    for step in steps:
        cfg = step.config
        if step.stage == "eval" and (sft := _trained_by(steps, cfg.model)):
            _check_eval(step, sft)
        elif step.stage == "opd":
            check_opd(step, steps)
            _check_launch(step, gpus_per_node)
        elif step.stage == "sft":
            flt = _source(steps, "filter", cfg.dataset)
            if flt is not None and (not flt.config.length or flt.config.max_tokens > cfg.max_length):
                    kept = f"max_tokens {flt.config.max_tokens}" if flt.config.length else "length: false"
                    raise DistillError(
                        f"step {flt.name!r} (filter) keeps traces up to {kept} but step {step.name!r} (sft) trains "
                        f"on max_length {cfg.max_length}: longer ones would be dropped or cut. Set filter.max_tokens "
                        f"to {cfg.max_length} (and filter.length: true)")
            _check_launch(step, gpus_per_node)
        elif step.stage == "generate":
            _check_teacher(step)


def _check_eval(step: Any, sft: Any) -> None:
    cfg = step.config
    positions, where = student_positions(sft.config)
    needed = PROMPT_TOKENS + cfg.max_tokens
    if positions is not None and positions < needed:
        raise DistillError(
            f"step {sft.name!r} (sft) gives {sft.config.student} {positions} positions ({where}) but step "
            f"{step.name!r} (eval) needs a prompt (up to {PROMPT_TOKENS} tokens) + max_tokens {cfg.max_tokens} = "
            f"{needed}. Raise sft.max_position_embeddings (the student recipes use 131072) or lower eval.max_tokens")
    trained = _train_format(sft.config)
    asked = (cfg.model_args or {}).get("chat_template")
    if asked is not None and asked != trained:
        raise DistillError(
            f"step {step.name!r} (eval) prompts with chat template {asked!r} but step {sft.name!r} (sft) trained "
            f"with {trained!r} (chat_format {sft.config.chat_format}). Drop eval.model_args.chat_template: the "
            "student's folder carries the template it was trained with")


def _check_launch(step: Any, gpus_per_node: int) -> None:
    cfg = step.config
    n = cfg.num_processes
    if n > gpus_per_node and n % gpus_per_node:
        raise DistillError(
            f"step {step.name!r} ({step.stage}): num_processes {n} is not GPUs per node ({gpus_per_node}) x nodes. Use a "
            f"multiple of {gpus_per_node}, or set pipeline.gpus_per_node")
    if n <= 1 or not cfg.accelerate_config:
        return
    path = Path(cfg.accelerate_config)
    launch = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(launch, dict):
        raise DistillError(f"step {step.name!r} ({step.stage}): accelerate_config {path} is not a readable launch config")
    procs, machines = launch.get("num_processes"), launch.get("num_machines", 1)
    nodes = max(1, math.ceil(n / gpus_per_node))
    if procs != n or machines * min(n, gpus_per_node) != n:
        raise DistillError(
            f"step {step.name!r} ({step.stage}) asks for num_processes {n} = {min(n, gpus_per_node)} GPUs per node x "
            f"{nodes} node(s), but its launch config {path} says num_processes {procs} on num_machines "
            f"{machines}. Set num_processes: {n} and num_machines: {nodes} there (or {step.stage}.num_processes: {procs})")


def _check_teacher(step: Any) -> None:
    cfg = step.config
    needed = PROMPT_TOKENS + cfg.max_tokens
    teacher = TEACHERS.get(cfg.teacher)
    if cfg.max_model_len is not None and cfg.max_model_len < needed and cfg.engine in ("vllm", "auto"):
        raise DistillError(
            f"step {step.name!r} (generate): max_model_len {cfg.max_model_len} is shorter than a prompt (up to "
            f"{PROMPT_TOKENS} tokens) + max_tokens {cfg.max_tokens} = {needed}: traces would be cut. Raise "
            "generate.max_model_len or lower generate.max_tokens")
    if teacher is not None and teacher.max_positions < needed:
        raise DistillError(
            f"step {step.name!r} (generate): teacher {cfg.teacher} has {teacher.max_positions} positions, fewer "
            f"than a prompt (up to {PROMPT_TOKENS} tokens) + max_tokens {cfg.max_tokens} = {needed}. Lower "
            "generate.max_tokens or use a teacher with a longer context")


# ------------------------------------------------------------------------------------------------ estimates
def _shape(model: str | None, steps: list[Any]) -> tuple[Student | None, str]:
    sft = _trained_by(steps, model)
    if sft is not None:
        return get_student(sft.config.student), f"{model} (step {sft.name}: {sft.config.student})"
    opd = _source(steps, "opd", model)
    if opd is not None:
        row, where = traced_shape(opd.config.student, steps, opd.config.student_shape)
        return row, f"{model} (step {opd.name}: {where})"
    if model in TEACHERS:
        return TEACHERS[model], model or ""
    row = next((s for s in STUDENTS.values() if s.base_model and s.base_model == model), None)
    return row, model or "?"


def vllm_estimate(s: Student, *, tp: int, dp: int, util: float, gpu_gib: float, ctx: int,
                  tokens: float, max_seqs: int = MAX_NUM_SEQS) -> tuple[list[str], float | None]:
    """Lines for one vLLM step (weights, KV cache, throughput) and its GPU-hours; ``max_seqs`` caps the sequences
    a replica decodes at once (a trainer's generation round holds only so many)."""
    weights = 2 * s.num_parameters()
    kv_token = 2 * s.layers * s.kv_heads * s.head_dim * 2             # k and v, bf16
    kv_gpu = util * gpu_gib * GIB - weights / tp
    lines = [f"  GPUs                {tp * dp} ({dp} replica(s) x tensor parallel {tp})",
             f"  memory per GPU      {util * gpu_gib:.1f} GiB reserved (gpu_memory_utilization {util}): weights "
             f"{weights / tp / GIB:.1f} GiB + KV cache {max(kv_gpu, 0) / GIB:.1f} GiB "
             f"({kv_token / 1024:.0f} KiB per token)"]
    if kv_gpu <= 0:
        lines.append("  note: the weights alone exceed the memory vLLM may use: raise tensor_parallel_size")
        return lines, None
    mean_ctx = PROMPT_TOKENS + ctx / 2
    batch = min(MAX_NUM_SEQS, max_seqs, kv_gpu * tp / (kv_token * mean_ctx))
    step_s = (weights + batch * mean_ctx * kv_token) / (tp * HBM_BYTES_S * BANDWIDTH_EFFICIENCY)
    rate = batch / step_s
    hours = tokens / rate / 3600 * tp
    lines.append(f"  throughput          ~{rate:,.0f} tokens/s per replica ({batch:.0f} sequences at a mean context "
                 f"of {mean_ctx:,.0f} tokens; assumption, see below)")
    lines.append(f"  GPU-hours           ~{hours:,.0f} ({hours / max(1, tp * dp):,.1f} h wall on {tp * dp} GPUs)")
    return lines, hours


def _generate_lines(step: Any, steps: list[Any], gpu_gib: float) -> tuple[list[str], float | None, float | None]:
    cfg = step.config
    problems = cfg.limit
    tokens = problems * cfg.num_samples * cfg.max_tokens if problems else None
    count = (f"{problems:,} problems x {cfg.num_samples} samples x {cfg.max_tokens:,} max_tokens = {tokens:,}"
             if tokens else f"problems of {cfg.dataset} unknown offline: set generate.limit to count them")
    lines = [f"  model               {cfg.teacher} (engine {cfg.engine})", f"  tokens              {count}"]
    if cfg.engine == "openai":
        lines.append(f"  GPUs                none here: served by {cfg.base_url}")
        return lines, tokens, None
    teacher, _ = _shape(cfg.teacher, steps)
    if teacher is None:
        lines.append(f"  note: {cfg.teacher}'s shape is not in distill.students.TEACHERS: no memory estimate")
        return lines, tokens, None
    more, hours = vllm_estimate(teacher, tp=cfg.tensor_parallel_size, dp=cfg.data_parallel_size,
                                util=cfg.gpu_memory_utilization, gpu_gib=gpu_gib, ctx=cfg.max_tokens,
                                tokens=tokens or 0)
    return lines + more, tokens, hours if tokens else None


def _eval_lines(step: Any, steps: list[Any], gpu_gib: float) -> tuple[list[str], float | None]:
    cfg = step.config
    s, name = _shape(cfg.model, steps)
    problems = cfg.limit or EVAL_PROBLEMS.get(cfg.task)
    samples = cfg.samples or 16
    tokens = problems * samples * cfg.max_tokens if problems else None
    lines = [f"  model               {name} (backend {cfg.backend}, task {cfg.task})",
             f"  tokens              {problems} problems x {samples} samples x {cfg.max_tokens:,} max_tokens = "
             f"{tokens:,}" if tokens else "  tokens              problem count unknown offline"]
    if s is None or cfg.backend != "vllm":
        return lines, None
    more, hours = vllm_estimate(s, tp=cfg.tensor_parallel_size, dp=cfg.data_parallel_size,
                                util=cfg.gpu_memory_utilization, gpu_gib=gpu_gib, ctx=cfg.max_tokens,
                                tokens=tokens or 0)
    return lines + more, hours


def _sft_lines(step: Any, trace_tokens: float | None) -> tuple[list[str], float | None]:
    cfg = step.config
    s = get_student(cfg.student)
    plan = make_plan(
        s, model=cfg.model or s.base_model, strategy=cfg.strategy, num_gpus=cfg.num_processes,
        seq_len=cfg.max_length, micro_batch=cfg.per_device_train_batch_size,
        grad_accum=cfg.gradient_accumulation_steps, checkpointing=cfg.gradient_checkpointing, lora=cfg.lora,
        qlora=cfg.qlora, lora_r=cfg.lora_r, lora_targets=cfg.lora_target_modules,
        offloading=cfg.activation_offloading, packing=cfg.packing, gpu_memory_gib=cfg.gpu_memory_gib,
        epochs=cfg.num_train_epochs, max_steps=cfg.max_steps)
    lines = ["  " + line for line in format_plan(plan).splitlines() if "steps per epoch" not in line]
    if not trace_tokens:
        lines.append("  dataset             unknown offline (no generate step with a limit): no GPU-hours")
        return lines, None
    data = trace_tokens * KEEP_RATE * MEAN_TRACE_FRACTION
    mean_len = MEAN_TRACE_FRACTION * cfg.max_length
    attention = 4 * s.layers * s.hidden * mean_len / 2                # QK^T and AV, causal: half the context
    flops = (6 * s.num_parameters() + 3 * attention) * (4 / 3 if cfg.gradient_checkpointing else 1)
    trained = data * cfg.num_train_epochs
    hours = trained * flops / (SFT_MFU * PEAK_BF16_FLOPS) / 3600
    lines.append(f"  dataset (estimate)  {data:,.0f} tokens x {cfg.num_train_epochs:g} epochs = {trained:,.0f} "
                 "tokens trained (assumption, see below)")
    lines.append(f"  GPU-hours           ~{hours:,.0f} ({hours / max(1, cfg.num_processes):,.1f} h wall on "
                 f"{cfg.num_processes} GPUs)")
    return lines, hours


def format_pipeline_plan(steps: list[Any], *, gpus_per_node: int = 8) -> str:
    """Check the steps against each other (refusing on a mismatch), then the plan's text."""
    check_steps(steps, gpus_per_node)
    gpu_gib = next((s.config.gpu_memory_gib for s in steps if s.stage == "sft"), 80.0)
    out, total, trace_tokens = [], 0.0, None
    for i, step in enumerate(steps, 1):
        out.append(f"[{i}/{len(steps)}] {step.name} ({step.stage}) -> {step.out}")
        hours = None
        if step.stage == "generate":
            lines, trace_tokens, hours = _generate_lines(step, steps, gpu_gib)
        elif step.stage == "eval":
            lines, hours = _eval_lines(step, steps, gpu_gib)
        elif step.stage == "sft":
            lines, hours = _sft_lines(step, trace_tokens)
        elif step.stage == "opd":
            lines, hours = opd_lines(step, steps, gpu_gib)
        elif step.stage in CPU_STAGES:
            lines = ["  CPU only"]
        else:
            lines = [f"  no GPU estimate for {step.stage} steps yet (not counted in the total)"]
        out.extend(lines)
        total += hours or 0.0
    out.append(f"total: ~{total:,.0f} GPU-hours (upper bound; steps without an estimate count 0)")
    out.append("assumptions (labelled estimates, not measurements):")
    out.extend(f"  - {a}" for a in ASSUMPTIONS + (OPD_ASSUMPTIONS if any(s.stage == "opd" for s in steps) else []))
    return "\n".join(out)
