"""Server mode of ``distill grpo``: the ``trl vllm-serve`` command that matches a recipe.

In server mode the rollouts come from a vLLM server on GPUs of their own, and the trainer pushes its
weights to it after every step (NCCL, so CUDA only). scripts/slurm/grpo.slurm asks this module for the
server's command line and its GPU count, so the server and the trainer are configured from one recipe::

    python -m distill.stages.grpo.serve --recipe recipes/teacher/r1-zero-qwen-7b.yaml --print command
    python -m distill.stages.grpo.serve --recipe recipes/teacher/r1-zero-qwen-7b.yaml --print gpus

``trl vllm-serve`` (TRL 1.16) runs vLLM's own ``vllm serve`` with the weight-transfer and log-prob settings
the trainer needs (and warns that it will become ``vllm serve`` itself in TRL 2).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from distill.config import resolve_config
from distill.errors import ConfigError
from distill.stages import section_names
from distill.stages.grpo.config import GRPOStageConfig


def server_gpus(cfg: Any) -> int:
    return int(cfg.vllm_tensor_parallel_size) * int(cfg.vllm_data_parallel_size)


def vllm_serve_command(cfg: Any, *, host: str = "0.0.0.0") -> list[str]:
    """The ``trl vllm-serve`` argv for this config (the server binds ``host``; the trainer dials
    ``cfg.vllm_server_host``)."""
    cmd = ["trl", "vllm-serve", "--model", cfg.model,
           "--tensor_parallel_size", str(cfg.vllm_tensor_parallel_size),
           "--data_parallel_size", str(cfg.vllm_data_parallel_size),
           # The server's GPUs are its own: not the colocate share (vllm_gpu_memory_utilization, 0.3), which would
           # leave 70% of them idle and starve the KV cache.
           "--gpu_memory_utilization", str(cfg.vllm_server_gpu_memory_utilization),
           "--host", host, "--port", str(cfg.vllm_server_port),
           "--dtype", "bfloat16" if cfg.bf16 is not False else "float32"]
    if cfg.vllm_max_model_length:
        cmd += ["--max_model_len", str(cfg.vllm_max_model_length)]
    if cfg.trust_remote_code:
        cmd += ["--trust_remote_code", "true"]
    return cmd


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m distill.stages.grpo.serve",
                                     description="print the vLLM server settings of a GRPO recipe (server mode)")
    parser.add_argument("--recipe", required=True, metavar="FILE")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--print", dest="what", choices=["command", "gpus", "port"], default="command")
    args = parser.parse_args(argv)
    try:
        cfg = resolve_config(GRPOStageConfig, "grpo", recipe=args.recipe, sets=args.sets,
                             known_sections=section_names())
    except (ConfigError, ValueError) as exc:
        print(f"distill.stages.grpo.serve: error: {exc}", file=sys.stderr)
        return 2
    if args.what == "gpus":
        print(server_gpus(cfg))
    elif args.what == "port":
        print(cfg.vllm_server_port)
    else:
        print(shlex.join(vllm_serve_command(cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
