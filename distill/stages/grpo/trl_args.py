"""Our stage config -> TRL's ``GRPOConfig``: which generation engine, which precision, which knobs.

Generation: on CUDA GPUs, vLLM through TRL (``colocate``: the engine shares the training GPUs;
``server``: the trainer talks to a ``trl vllm-serve`` on other GPUs, see scripts/slurm/grpo.slurm).
Elsewhere, transformers' ``generate``. TRL's vLLM path cannot run on a CPU, even with the CPU build of
vLLM: its weight sync after each optimizer step needs CUDA (NCCL in server mode, CUDA-repacked weights in
colocate mode). This is checked here with a clear error rather than worked around.

:func:`trl_kwargs` is pure (no TRL import, no GPU needed), so a test can check that a GPU recipe resolves
to the GRPOConfig a user expects; :func:`make_grpo_config` builds the real object. ``GRPOConfig`` refuses
``bf16`` without a GPU, so on a CPU-only machine :data:`CPU_SAFE_OVERRIDES` lets the object be built with
every other field (the vLLM ones included) exactly as a GPU node would get them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.launch import per_rank_placement

CPU_SAFE_OVERRIDES = {"use_cpu": True, "bf16": False}
CHECKPOINTS = "checkpoints"


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_generation(generation: str, *, cuda: bool, have_vllm: bool) -> str:
    """``vllm`` or ``transformers`` for a requested ``auto|vllm|transformers``; errors say what to change."""
    if generation == "transformers":
        return "transformers"
    if generation == "vllm":
        if not cuda:
            raise DistillError(
                "generation: vllm needs CUDA GPUs: TRL syncs the trained weights into vLLM over CUDA after every "
                "step, which the CPU build of vLLM cannot do. On this machine pass --generation transformers "
                "(or leave it on auto)")
        if not have_vllm:
            raise DistillError("generation: vllm, but vllm is not installed: pip install 'distill[vllm]' on the "
                               "GPU machine, or pass --generation transformers")
        return "vllm"
    if generation != "auto":
        raise DistillError(f"generation must be auto, vllm or transformers (got {generation!r})")
    return "vllm" if cuda and have_vllm else "transformers"


def uses_deepspeed(cfg: Any) -> bool:
    """Whether the training ranks run under DeepSpeed: ``--accelerate-config`` says so, or the strategy is ZeRO and
    the run is relaunched on several processes (one process without a config file runs plain PyTorch)."""
    if cfg.accelerate_config:
        import yaml

        try:
            data = yaml.safe_load(Path(cfg.accelerate_config).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return False      # the launcher reports an unreadable file; load weights in fp32 meanwhile
        return isinstance(data, dict) and data.get("distributed_type") == "DEEPSPEED"
    return cfg.num_processes > 1 and cfg.strategy in ("zero2", "zero3")


def master_dtype(cfg: Any, *, bf16: bool) -> str:
    """The dtype the policy is loaded in (TRL's ``model_init_kwargs["dtype"]``), which is also the dtype AdamW updates.

    bf16 holds 8 bits of mantissa: at weights of magnitude ~1 its step is 2**-7, so AdamW's first updates at the
    recipes' learning rate of 1e-6 round away entirely. So the policy keeps fp32 master weights and ``bf16=True``
    makes the forward and backward run under bf16 autocast, except where the engine keeps its own fp32 master copy:
    DeepSpeed (bf16 weights, fp32 master and Adam states in its optimizer). FSDP2 upcasts low-precision trainable
    weights to fp32 itself (accelerate's ``fsdp2_prepare_model``), so fp32 costs it nothing extra.
    """
    return "bfloat16" if bf16 and uses_deepspeed(cfg) else "float32"


def trl_kwargs(cfg: Any, *, reward_weights: list[float], cuda: bool, have_vllm: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``trl.GRPOConfig`` for this run, as a GPU node (``cuda=True``) or this machine."""
    engine = resolve_generation(cfg.generation, cuda=cuda, have_vllm=have_vllm)
    bf16 = cuda if cfg.bf16 is None else cfg.bf16
    if bf16 and not cuda:
        raise DistillError("bf16 training needs a GPU here (transformers refuses it on CPU): pass --no-bf16")
    kw: dict[str, Any] = {
        "output_dir": str(Path(cfg.out) / CHECKPOINTS),
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        # optimisation
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "max_steps": cfg.max_steps,
        "num_train_epochs": cfg.num_train_epochs,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "steps_per_generation": cfg.steps_per_generation,
        "num_iterations": cfg.num_iterations,
        # GRPO
        "num_generations": cfg.num_generations,
        "max_completion_length": cfg.max_completion_length,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "beta": cfg.beta,
        "epsilon": cfg.epsilon,
        "epsilon_high": cfg.epsilon_high,
        "loss_type": cfg.loss_type,
        "scale_rewards": cfg.scale_rewards,
        "mask_truncated_completions": cfg.mask_truncated_completions,
        "reward_weights": list(reward_weights),
        # hardware
        "use_cpu": not cuda,
        "bf16": bf16,
        "fp16": False,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "model_init_kwargs": {"dtype": master_dtype(cfg, bf16=bf16),
                              **per_rank_placement(cfg.num_processes, cfg.accelerate_config)},
        "trust_remote_code": cfg.trust_remote_code,
        # logging and checkpoints (our callbacks write the metrics; TRL's completion tables stay off)
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "report_to": "none" if cfg.report_to in ("", "none") else cfg.report_to,
        "log_completions": False,
        "remove_unused_columns": False,
        "push_to_hub": False,
        # generation engine
        "use_vllm": engine == "vllm",
    }
    if engine == "vllm":
        kw.update({
            "vllm_mode": cfg.vllm_mode,
            "vllm_tensor_parallel_size": cfg.vllm_tensor_parallel_size,
            "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
            "vllm_enable_sleep_mode": cfg.vllm_enable_sleep_mode,
            "vllm_max_model_length": cfg.vllm_max_model_length,
            "vllm_server_host": cfg.vllm_server_host,
            "vllm_server_port": cfg.vllm_server_port,
            "vllm_server_timeout": cfg.vllm_server_timeout,
        })
    return kw


def make_grpo_config(kwargs: dict[str, Any]) -> Any:
    """``trl.GRPOConfig(**kwargs)``; its batch-shape errors become ConfigErrors that say what to change."""
    from trl import GRPOConfig


    try:
        return GRPOConfig(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"TRL rejected the GRPO settings: {exc}") from None
