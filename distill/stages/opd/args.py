"""Our config -> TRL's ``IWOPDConfig``: which student sampler, which teacher, which precision.

:func:`trl_kwargs` is pure (no TRL import, no GPU needed), so a test can check what a GPU recipe resolves to.

Student sampling: on CUDA GPUs vLLM through TRL (``colocate``: the engine shares the training GPUs; ``server``: a
``trl vllm-serve`` of the student on other GPUs, weights pushed over NCCL after each step), elsewhere transformers'
``generate``. TRL's weight sync into vLLM needs CUDA, so vLLM is refused on a CPU with a message, not worked around.

The teacher runs in the training processes (``teacher_model``, bf16 on GPUs, frozen), or behind a vLLM server
(``teacher_server_url``): TRL then asks ``/v1/completions`` for the prompt logprobs of each sampled sequence
(``max_tokens=1``), so a plain ``vllm serve TEACHER`` serves it; only top-k logprobs come back, which is why
``loss_top_k`` must then be 1 with ``beta > 0``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.launch import per_rank_placement

CHECKPOINTS = "checkpoints"


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def resolve_generation(generation: str, *, cuda: bool, have_vllm: bool) -> str:
    """``vllm`` or ``transformers`` for ``auto|vllm|transformers``; an impossible choice is one clear error."""
    if generation == "transformers":
        return "transformers"
    if generation == "vllm":
        if not cuda:
            raise DistillError("generation: vllm needs CUDA GPUs (TRL pushes the student's weights into vLLM over "
                               "CUDA after every step); on this machine pass --generation transformers")
        if not have_vllm:
            raise DistillError("generation: vllm, but vllm is not installed: pip install vllm on the GPU machine, "
                               "or pass --generation transformers")
        return "vllm"
    return "vllm" if cuda and have_vllm else "transformers"


def _uses_deepspeed(cfg: Any) -> bool:
    if cfg.accelerate_config:
        import yaml

        try:
            data = yaml.safe_load(Path(cfg.accelerate_config).read_text()) or {}
        except (OSError, yaml.YAMLError):
            return False
        return isinstance(data, dict) and data.get("distributed_type") == "DEEPSPEED"
    return cfg.num_processes > 1 and cfg.strategy in ("zero2", "zero3")


def trl_kwargs(cfg: Any, *, cuda: bool, have_vllm: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``IWOPDConfig`` for this run, as a GPU node (``cuda=True``) or this machine sees it.

    The student keeps fp32 master weights (bf16 autocast on GPUs) unless DeepSpeed holds them; the frozen teacher
    loads in bf16 on GPUs and fp32 on CPUs.
    """
    engine = resolve_generation(cfg.generation, cuda=cuda, have_vllm=have_vllm)
    bf16 = cuda if cfg.bf16 is None else cfg.bf16
    if bf16 and not cuda:
        raise DistillError("bf16 training needs a GPU here (transformers refuses it on CPU): pass --no-bf16")
    scheduler: dict[str, Any] = {}
    if cfg.lr_scheduler_type == "cosine_with_min_lr":
        scheduler = {"lr_scheduler_kwargs": {"min_lr_rate": cfg.min_lr_rate}}
    placement = per_rank_placement(cfg.num_processes, cfg.accelerate_config)
    kw: dict[str, Any] = {
        "output_dir": str(Path(cfg.out) / CHECKPOINTS), "seed": cfg.seed, "data_seed": cfg.seed,
        # optimisation
        "learning_rate": cfg.learning_rate, "lr_scheduler_type": cfg.lr_scheduler_type, **scheduler,
        "warmup_steps": cfg.warmup_steps, "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm,
        "max_steps": cfg.max_steps, "num_train_epochs": cfg.num_train_epochs,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        # distillation: TRL's generalized JSD (beta 1.0 = reverse KL), on/off-policy mix lmbda
        "distillation_objective": "jsd", "lmbda": cfg.lmbda, "beta": cfg.beta, "loss_top_k": cfg.loss_top_k,
        "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": 0,
        "max_completion_length": cfg.max_completion_length,
        "max_length": cfg.max_prompt_tokens + cfg.max_completion_length,
        "max_prompt_length": cfg.max_prompt_tokens,
        # models and hardware
        "model_init_kwargs": {"dtype": "bfloat16" if bf16 and _uses_deepspeed(cfg) else "float32", **placement},
        "teacher_model_init_kwargs": {"dtype": "bfloat16" if cuda else "float32", **placement},
        "trust_remote_code": cfg.trust_remote_code, "use_cpu": not cuda, "bf16": bf16, "fp16": False,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "use_teacher_server": bool(cfg.teacher_server_url), "teacher_model_server_url": cfg.teacher_server_url,
        # logging and checkpoints (our callbacks write the metrics)
        "logging_steps": cfg.logging_steps, "save_strategy": "steps", "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit, "report_to": "none" if cfg.report_to in ("", "none") else
        cfg.report_to, "log_completions": False, "push_to_hub": False,
        # student sampling
        "use_vllm": engine == "vllm",
    }
    if engine == "vllm":
        kw.update({"vllm_mode": cfg.vllm_mode, "vllm_tensor_parallel_size": cfg.vllm_tensor_parallel_size,
                   "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
                   "vllm_enable_sleep_mode": cfg.vllm_enable_sleep_mode,
                   "vllm_max_model_length": cfg.vllm_max_model_length, "vllm_server_host": cfg.vllm_server_host,
                   "vllm_server_port": cfg.vllm_server_port, "vllm_server_timeout": cfg.vllm_server_timeout})
    return kw


def make_trl_config(kwargs: dict[str, Any]) -> Any:
    """``IWOPDConfig(**kwargs)``; its own refusals become ConfigErrors that say what TRL rejected."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.iw_opd import IWOPDConfig

    from distill.errors import ConfigError

    try:
        return IWOPDConfig(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"TRL rejected the distillation settings: {exc}") from None
