"""The command registry: one row per ``distill`` command, each a package under ``distill/stages/``.

A command's package holds its config dataclass (``config.py``), its ``run(cfg)`` (``stage.py``) and its own
helpers. Stages never import each other; they meet through files on disk and the shared layers below them
(:mod:`distill.data`, :mod:`distill.verify`, :mod:`distill.engines`, :mod:`distill.metrics`). Only the CLI, the
pipeline and GRPO's server helper read this table, and they load a command's code by name through it.

>>> get_command("eval").package
'evaluate'
>>> get_command("nano-task").module("config")
'distill.stages.nano_task.config'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from distill.errors import ConfigError


@dataclass(frozen=True)
class Command:
    """One ``distill`` command: its name, its package under ``distill/stages/``, its config class and its help.

    ``needs_recipe``: the runner is called as ``run(cfg, recipe=WHOLE_RECIPE)`` (a command that drives others),
    otherwise as ``run(cfg)``.
    """

    name: str
    package: str
    config_class: str
    help: str
    examples: str
    needs_recipe: bool = False

    def module(self, part: str) -> str:
        return f"{__name__}.{self.package}.{part}"

    def load_config_class(self) -> type:
        return getattr(importlib.import_module(self.module("config")), self.config_class)

    def run(self, cfg: Any, recipe: dict[str, Any] | None = None) -> Any:
        runner = importlib.import_module(self.module("stage")).run
        if self.needs_recipe:
            return runner(cfg, recipe=recipe or {})
        return runner(cfg)


# One row per command, in pipeline order. A command is listed here only once it works.
COMMANDS: list[Command] = [
    Command("tiny", "tiny", "TinyConfig",
            "make a tiny Qwen2/Llama checkpoint offline (tests, nano recipe)",
            "distill tiny --arch qwen2 --out tiny-model\n"
            "  distill tiny --arch llama --layers 4 --out tiny-llama\n"
            "  distill tiny --recipe recipes/nano.yaml --print-config"),
    Command("grpo", "grpo", "GRPOStageConfig",
            "R1-Zero teacher: GRPO on a base model with rule-based rewards (TRL; vLLM rollouts on GPUs)",
            "distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml --print-config\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-1.5b.yaml --set grpo.beta=0.01 --max-steps 200\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml --resume   # after a crash or Ctrl-C\n"
            "  sbatch scripts/slurm/grpo.slurm recipes/teacher/r1-zero-qwen-7b.yaml  # vLLM server mode\n"
            "  distill grpo --recipe recipes/teacher/tiny.yaml   # CPU, minutes (after the nano base exists)\n"
            "Watch OUT/metrics.jsonl, OUT/eval.jsonl and OUT/plots/*.png; the final model is OUT itself."),
    Command("generate", "generate", "GenerateConfig",
            "long-CoT traces from a teacher (vllm, hf or an OpenAI-compatible endpoint): n per problem, "
            "sharded, resumable",
            "distill generate --teacher deepseek-ai/DeepSeek-R1-Distill-Qwen-32B --dataset problems.jsonl "
            "--num-samples 4 --out out/traces\n"
            "  distill generate --recipe recipes/generate/r1-distill-32b.yaml --tensor-parallel-size 2 "
            "--data-parallel-size 4\n"
            "  distill generate --engine openai --base-url http://127.0.0.1:8000/v1 --teacher served-name "
            "--dataset problems.jsonl --out out/traces\n"
            "  distill generate --recipe recipes/generate/deepseek-api.yaml --dataset problems.jsonl "
            "--out out/traces-r1   # key from $DEEPSEEK_API_KEY\n"
            "  distill generate --engine hf --teacher out/tiny-model --dataset problems.jsonl --max-tokens 256 "
            "--out /tmp/traces\n"
            "  distill generate ... --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID   "
            "# see scripts/slurm/generate.slurm\n"
            "  distill generate ... --answer-column '' --id-column uid   # no gold answers: no verdicts\n"
            "  distill generate ... --dataset humaneval.jsonl --tests-column auto   # code: verdicts by running tests\n"
            "Rerunning the same command resumes: (problem, sample) pairs already written are skipped."),
    Command("filter", "filter", "FilterConfig",
            "rejection sampling: keep correct, complete, readable, uncontaminated traces -> SFT dataset",
            "distill filter --traces out/traces --out out/sft-data\n"
            "  distill filter --recipe recipes/filter/default.yaml --traces out/traces-r1 out/traces-qwq --out out/sft\n"
            "  distill filter --traces out/traces --out out/sft --tokenizer Qwen/Qwen2.5-Math-7B --max-tokens 16384\n"
            "  distill filter --traces out/traces --out out/sft --decontaminate-files aime24.jsonl math500.jsonl\n"
            "  distill filter --traces out/traces --out out/sft --select shortest --max-per-problem 1 --reverify"),
    Command("sft", "sft", "SFTStageConfig",
            "fine-tune a student on the filtered traces (TRL SFT; one GPU to many nodes; LoRA optional)",
            "distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --out out/qwen-7b\n"
            "  distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --plan\n"
            "  distill sft --student llama-8b --dataset out/sft-data --max-length 16384 --num-processes 8 --strategy zero2\n"
            "  distill sft --recipe recipes/students/llama-70b.yaml --dataset out/sft-data --lora --strategy zero3\n"
            "  distill sft --recipe recipes/students/tiny-qwen.yaml --dataset out/nano/task/warmup --max-steps 50\n"
            "  distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --resume   # after a crash"),
    Command("opd", "opd", "OPDConfig",
            "on-policy distillation: the student samples, the teacher scores each token (reverse KL; TRL)",
            "distill opd --student out/qwen-7b --teacher out/qwen-32b --dataset problems.jsonl --out out/qwen-7b-opd\n"
            "  distill opd --recipe recipes/opd/qwen-7b.yaml --print-config\n"
            "  distill pipeline --recipe recipes/opd/qwen-7b.yaml --plan   # memory, tokens, GPU-hours; offline\n"
            "  distill opd --recipe recipes/opd/qwen-7b.yaml --teacher-server-url http://teacher:8000 --loss-top-k 1\n"
            "  distill opd --student out/student --teacher out/teacher --dataset problems.jsonl --lmbda 0.5 "
            "--offpolicy-dataset out/sft-data   # half the batches on teacher traces\n"
            "  distill opd --student out/nano/student --teacher out/nano/grpo --dataset out/nano/task/train.jsonl "
            "--max-steps 20 --generation transformers --no-gradient-checkpointing --out /tmp/opd   # CPU, minutes\n"
            "Rerunning the same command resumes from the last checkpoint. Watch OUT/metrics.jsonl and OUT/plots/*.png; "
            "the final model is OUT itself."),
    Command("eval", "evaluate", "EvalConfig",
            "pass@1 over n samples, cons@n and pass@k the DeepSeek-R1 way (lm-eval + distill.verify)",
            "distill eval --task aime24 --model out/qwen-7b\n"
            "  distill eval --task aime24 --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B --samples 64 "
            "--tensor-parallel-size 2\n"
            "  distill eval --task math500 --model out/qwen-7b --data-file data/math500.jsonl --limit 50\n"
            "  distill eval --task aime24 --model tiny-model --backend hf --samples 4 --max-tokens 32\n"
            "  distill eval --task aime24 --completions completions.jsonl --data-file aime24.jsonl --out out/rescore"),
    Command("card", "card", "CardConfig",
            "write MODEL_CARDS/<student>.md: recipe, lineage from run.json files, measured vs paper numbers",
            "distill card --student qwen-7b\n"
            "  distill card --student qwen-7b --sft-dir out/qwen-7b --eval-dir out/eval/qwen-7b\n"
            "  distill card --student all"),
    Command("nano-task", "nano_task", "NanoTaskConfig",
            "write a nano task (addition, or --kind code: tiny programs with tests): train/held-out problems "
            "and a warm-up SFT set",
            "distill nano-task --out out/nano/task\n"
            "  distill nano-task --kind code --out out/nano-code/task\n"
            "  distill nano-task --train-problems 500 --heldout-problems 100 --seed 1 --out /tmp/nano"),
    Command("pipeline", "pipeline", "PipelineConfig",
            "run a recipe's steps in order (resumable; finished steps are skipped) and write a report",
            "distill pipeline --recipe recipes/nano.yaml\n"
            "  distill pipeline --recipe recipes/nano.yaml --seed 1 --out out/nano-seed1\n"
            "  distill pipeline --recipe recipes/nano.yaml --from grpo --until eval-teacher\n"
            "  distill pipeline --recipe recipes/nano.yaml --dry-run",
            needs_recipe=True),
]


def get_command(name: str) -> Command:
    for cmd in COMMANDS:
        if cmd.name == name:
            return cmd
    raise ConfigError(f"unknown command {name!r}; commands: {', '.join(section_names())}")


def section_names() -> list[str]:
    """The recipe sections a recipe may hold besides the meta sections: one per command."""
    return [c.name for c in COMMANDS]


__all__ = ["COMMANDS", "Command", "get_command", "section_names"]
