"""The ``distill`` command line: one thin subcommand per stage.

Each subcommand reads ``--recipe FILE`` (its own section of it), applies ``--set section.key=value`` and its
plain flags, then calls one function of a stage. Flags are generated from the stage's config dataclass, so
the same option is spelled the same way in every command and documented in one place.
Heavy libraries are imported only inside the stage that runs, so ``distill --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any

from distill import __version__
from distill.config import (
    ConfigError,
    _unwrap_optional,
    dump_config,
    field_types,
    load_recipe,
    parse_sets,
    resolve_config,
)


@dataclass(frozen=True)
class Command:
    name: str
    config: str        # "module:Class" of the stage's config dataclass
    run: str           # "module:function" called with the resolved config
    help: str
    examples: str


# One row per stage, in pipeline order. A stage is listed here only once it works.
COMMANDS: list[Command] = [
    Command("tiny", "distill.configs.tiny:TinyConfig", "distill.stages.tiny:run",
            "make a tiny Qwen2/Llama checkpoint offline (tests, nano recipe)",
            "distill tiny --arch qwen2 --out tiny-model\n"
            "  distill tiny --arch llama --layers 4 --out tiny-llama\n"
            "  distill tiny --recipe recipes/nano.yaml --print-config"),
    Command("grpo", "distill.configs.grpo:GRPOStageConfig", "distill.stages.grpo:run",
            "R1-Zero teacher: GRPO on a base model with rule-based rewards (TRL; vLLM rollouts on GPUs)",
            "distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml --print-config\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-1.5b.yaml --set grpo.beta=0.01 --max-steps 200\n"
            "  distill grpo --recipe recipes/teacher/r1-zero-qwen-7b.yaml --resume   # after a crash or Ctrl-C\n"
            "  sbatch scripts/slurm/grpo.slurm recipes/teacher/r1-zero-qwen-7b.yaml  # vLLM server mode\n"
            "  distill grpo --recipe recipes/teacher/tiny.yaml   # CPU, minutes (after the nano base exists)\n"
            "Watch OUT/metrics.jsonl, OUT/eval.jsonl and OUT/plots/*.png; the final model is OUT itself."),
    Command("generate", "distill.configs.generate:GenerateConfig", "distill.stages.generate:run",
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
            "Rerunning the same command resumes: (problem, sample) pairs already written are skipped."),
    Command("filter", "distill.configs.filter:FilterConfig", "distill.stages.filter:run",
            "rejection sampling: keep correct, complete, readable, uncontaminated traces -> SFT dataset",
            "distill filter --traces out/traces --out out/sft-data\n"
            "  distill filter --recipe recipes/filter/default.yaml --traces out/traces-r1 out/traces-qwq --out out/sft\n"
            "  distill filter --traces out/traces --out out/sft --tokenizer Qwen/Qwen2.5-Math-7B --max-tokens 16384\n"
            "  distill filter --traces out/traces --out out/sft --decontaminate-files aime24.jsonl math500.jsonl\n"
            "  distill filter --traces out/traces --out out/sft --select shortest --max-per-problem 1 --reverify"),
    Command("sft", "distill.configs.sft:SFTStageConfig", "distill.stages.sft:run",
            "fine-tune a student on the filtered traces (TRL SFT; one GPU to many nodes; LoRA optional)",
            "distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --out out/qwen-7b\n"
            "  distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --plan\n"
            "  distill sft --student llama-8b --dataset out/sft-data --max-length 16384 --num-processes 8 --strategy zero2\n"
            "  distill sft --recipe recipes/students/llama-70b.yaml --dataset out/sft-data --lora --strategy zero3\n"
            "  distill sft --recipe recipes/students/tiny-qwen.yaml --dataset out/nano/task/warmup --max-steps 50\n"
            "  distill sft --recipe recipes/students/qwen-7b.yaml --dataset out/sft-data --resume   # after a crash"),
    Command("eval", "distill.configs.evaluate:EvalConfig", "distill.stages.evaluate:run",
            "pass@1 over n samples, cons@n and pass@k the DeepSeek-R1 way (lm-eval + distill.verify)",
            "distill eval --task aime24 --model out/qwen-7b\n"
            "  distill eval --task aime24 --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B --samples 64 "
            "--tensor-parallel-size 2\n"
            "  distill eval --task math500 --model out/qwen-7b --data-file data/math500.jsonl --limit 50\n"
            "  distill eval --task aime24 --model tiny-model --backend hf --samples 4 --max-tokens 32\n"
            "  distill eval --task aime24 --completions completions.jsonl --data-file aime24.jsonl --out out/rescore"),
    Command("card", "distill.configs.card:CardConfig", "distill.stages.card:run",
            "write MODEL_CARDS/<student>.md: recipe, lineage from run.json files, measured vs paper numbers",
            "distill card --student qwen-7b\n"
            "  distill card --student qwen-7b --sft-dir out/qwen-7b --eval-dir out/eval/qwen-7b\n"
            "  distill card --student all"),
    Command("nano-task", "distill.configs.nano_task:NanoTaskConfig", "distill.stages.nano_task:run",
            "write the nano arithmetic task: train/held-out problems and a warm-up SFT set",
            "distill nano-task --out out/nano/task\n"
            "  distill nano-task --train-problems 500 --heldout-problems 100 --seed 1 --out /tmp/nano"),
    Command("pipeline", "distill.configs.pipeline:PipelineConfig", "distill.pipeline:run",
            "run a recipe's steps in order (resumable; finished steps are skipped) and write a report",
            "distill pipeline --recipe recipes/nano.yaml\n"
            "  distill pipeline --recipe recipes/nano.yaml --seed 1 --out out/nano-seed1\n"
            "  distill pipeline --recipe recipes/nano.yaml --from grpo --until eval-teacher\n"
            "  distill pipeline --recipe recipes/nano.yaml --dry-run"),
]


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def section_names() -> list[str]:
    return [c.name for c in COMMANDS]


def _add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    types_ = field_types(cls)
    group = parser.add_argument_group("options (each also settable in the recipe or with --set)")
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("flag", True):
            continue
        tp, _ = _unwrap_optional(types_[f.name])
        flag = meta["flag"] if isinstance(meta.get("flag"), str) else "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        help_ = meta.get("help", "")
        if meta.get("choices"):
            help_ += f" [{'|'.join(map(str, meta['choices']))}]"
        if default not in (None, "", [], {}):
            help_ += f" (default: {default})"
        help_ = help_.replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f"cfg__{f.name}", "default": None, "help": help_}
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(tp) in (list, tuple) or tp in (list, tuple):
            group.add_argument(flag, nargs="+", metavar=f.name.upper(), **kwargs)
        elif typing.get_origin(tp) is dict or tp is dict:
            continue
        else:
            group.add_argument(flag, metavar=f.name.upper(), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distill",
        description="Reproduce DeepSeek-R1 reasoning distillation: GRPO teacher -> traces -> filter -> "
                    "SFT students -> eval.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  " + "\n  ".join(c.examples.splitlines()[0] for c in COMMANDS)
               + "\n\nRun 'distill COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"distill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="examples:\n  " + cmd.examples)
        common = p.add_argument_group("common")
        common.add_argument("--recipe", metavar="FILE", help=f"YAML recipe; its '{cmd.name}:' section is read")
        common.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                            help=f"override any option, e.g. --set {cmd.name}.seed=1 (repeatable)")
        common.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
        common.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
        _add_config_flags(p, _load(cmd.config))
    return parser


def setup_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.ERROR)),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if verbose == 0:
        for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, level))


def resolve_command_config(cmd: Command, args: argparse.Namespace) -> Any:
    flags = {k[len("cfg__"):]: v for k, v in vars(args).items() if k.startswith("cfg__")}
    return resolve_config(_load(cmd.config), cmd.name, recipe=args.recipe, sets=args.sets, flags=flags,
                          known_sections=section_names())


def full_recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The whole recipe with every section's ``--set`` overrides merged in (for commands that drive others)."""
    data = load_recipe(args.recipe) if args.recipe else {}
    for section, values in parse_sets(args.sets, args.command).items():
        data[section] = {**(data.get(section) or {}), **values}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    cmd = next(c for c in COMMANDS if c.name == args.command)
    setup_logging(args.verbose, args.quiet)
    from distill.errors import USER_ERRORS

    try:
        cfg = resolve_command_config(cmd, args)
        if args.print_config:
            sys.stdout.write(dump_config(cmd.name, cfg))
            return 0
        runner = _load(cmd.run)
        if "recipe" in inspect.signature(runner).parameters:
            runner(cfg, recipe=full_recipe(args))
        else:
            runner(cfg)
    except USER_ERRORS as exc:
        print(f"distill {cmd.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndistill {cmd.name}: interrupted. Finished work is on disk; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    return 0


def entrypoint() -> None:  # console script
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()


__all__ = ["COMMANDS", "Command", "ConfigError", "build_parser", "main"]
