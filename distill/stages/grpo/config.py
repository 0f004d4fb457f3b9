"""Config of ``distill grpo``: the R1-Zero teacher stage (GRPO with rule-based rewards, on TRL).

Field names follow TRL's ``GRPOConfig`` where an option passes straight through (``num_generations``,
``beta``, ``epsilon``, ``loss_type``, ``scale_rewards``, ``vllm_*``), so TRL's documentation applies to them.
Defaults differ from TRL's where the paper says otherwise: ``beta`` (the KL coefficient) is 0.001, not 0,
and ``loss_type`` is ``grpo`` (per-sequence length normalisation, the paper's objective), not ``dapo``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from distill.config import option
from distill.rewards import build_rewards

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")
FORMAT_REWARDS = ("format", "r1_zero_format")
DEFAULT_REWARDS: dict[str, Any] = {"accuracy": {"weight": 1.0}, "r1_zero_format": {"weight": 0.2}}


@dataclass
class GRPOStageConfig:
    # ------------------------------------------------------------------ model and data
    model: str = option("", "base model to train: a local folder or a hub id (e.g. Qwen/Qwen2.5-Math-7B)")
    dataset: str = option("", "training problems with verifiable answers: hub id or .jsonl/.json/.parquet/.csv")
    dataset_split: str = option("train", "split of a hub dataset")
    dataset_subset: str | None = option(None, "subset (config name) of a hub dataset")
    problem_column: str = option("problem", "column holding the problem text")
    answer_column: str = option("answer", "column holding the gold answer (reaches the accuracy reward)")
    id_column: str | None = option(None, "column holding a problem id (default: id/unique_id if present)")
    tests_column: str | None = option("auto", "code problems: the column holding the tests (reaches the code reward "
                                      "as JSON text in 'tests'); auto: 'tests', else test + entry_point, "
                                      "input_output, or inputs + outputs; null: none")
    limit: int | None = option(None, "use at most this many training problems")
    template: str = option("r1-zero", "prompt: the R1-Zero plain-text template or the chat prompt",
                           choices=["r1-zero", "chat"])
    system: str | None = option(None, "system turn for the chat prompt (the paper uses none)")
    max_prompt_tokens: int = option(512, "drop problems whose prompt is longer than this many tokens")
    trust_remote_code: bool = option(False, "allow model/tokenizer code from the hub (off unless you trust it)")

    # ------------------------------------------------------------------ rewards
    rewards: dict[str, Any] = option(
        help="reward name -> {weight, params}; names: accuracy, format, r1_zero_format, language_consistency, "
             "overlong (see distill.rewards)", flag=False, default_factory=lambda: copy.deepcopy(DEFAULT_REWARDS))

    # ------------------------------------------------------------------ GRPO
    num_generations: int = option(8, "group size G: completions sampled per prompt")
    per_device_train_batch_size: int = option(8, "completions per device per micro-batch")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step")
    steps_per_generation: int | None = option(None, "optimizer steps per generation round (default: "
                                                    "gradient_accumulation_steps)")
    num_iterations: int = option(1, "policy updates per generated batch (mu in the paper)")
    beta: float = option(0.001, "KL coefficient to the reference model (TRL's default is 0: no KL term)")
    epsilon: float = option(0.2, "clip epsilon of the policy ratio")
    epsilon_high: float | None = option(None, "upper clip epsilon (DAPO's clip-higher; default: epsilon)")
    loss_type: str = option("grpo", "loss aggregation (grpo: per-sequence mean, the paper's; dapo: TRL's "
                                    "default, per-token)", choices=list(LOSS_TYPES))
    scale_rewards: str = option("group", "divide advantages by the reward std of the group, the batch, or not",
                                choices=["group", "batch", "none"])
    mask_truncated_completions: bool = option(False, "leave completions cut at max_completion_length out of "
                                                     "the loss")
    max_completion_length: int = option(1024, "max tokens per completion")
    temperature: float = option(1.0, "sampling temperature of the rollouts")
    top_p: float = option(1.0, "nucleus sampling of the rollouts")
    learning_rate: float = option(1e-6, "peak learning rate")
    lr_scheduler_type: str = option("constant", "transformers scheduler name (constant, cosine, linear, ...)")
    warmup_steps: float = option(0, "learning-rate warm-up: steps (>= 1) or a share of all steps (< 1); needs a "
                                    "*_with_warmup, cosine or linear scheduler")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping")
    max_steps: int = option(-1, "optimizer steps (-1: num_train_epochs passes over the problems)")
    num_train_epochs: float = option(1.0, "passes over the problems when max_steps is -1")
    seed: int = option(0, "seed of sampling, shuffling and initialisation")

    # ------------------------------------------------------------------ generation engine
    generation: str = option("auto", "rollout engine: vllm (GPUs), transformers (anywhere), auto (vllm when "
                                     "CUDA and vllm are present)", choices=["auto", "vllm", "transformers"])
    vllm_mode: str = option("colocate", "colocate: vLLM shares the training GPUs; server: a separate "
                                        "`trl vllm-serve` on other GPUs", choices=["colocate", "server"])
    vllm_tensor_parallel_size: int = option(1, "tensor-parallel size of the vLLM engine")
    vllm_gpu_memory_utilization: float = option(0.3, "colocate: share of each training GPU's memory vLLM may take "
                                                     "(leave room for training)")
    vllm_server_gpu_memory_utilization: float = option(0.9, "server mode: share of the server's own GPUs vLLM may "
                                                            "take (nothing else runs there; trl vllm-serve's default)")
    vllm_enable_sleep_mode: bool = option(False, "colocate: offload vLLM weights/cache during the optimizer step")
    vllm_max_model_length: int | None = option(None, "vLLM context (>= prompt + max_completion_length; default: "
                                                     "the model's)")
    vllm_server_host: str = option("localhost", "server mode: host of `trl vllm-serve`")
    vllm_server_port: int = option(8000, "server mode: port of `trl vllm-serve`")
    vllm_server_timeout: float = option(600.0, "server mode: seconds to wait for the server to come up")
    vllm_data_parallel_size: int = option(1, "server mode: data-parallel engines of `trl vllm-serve`")

    # ------------------------------------------------------------------ hardware and launch
    bf16: bool | None = option(None, "bfloat16 mixed precision (default: yes on CUDA, no on CPU); the policy keeps "
                                     "fp32 master weights unless DeepSpeed holds them (distill.stages.grpo.trl_args)")
    gradient_checkpointing: bool = option(True, "recompute activations to save memory")
    strategy: str = option("ddp", "multi-GPU strategy, recipes/accelerate/<strategy>.yaml",
                           choices=["ddp", "zero2", "zero3", "fsdp"])
    num_processes: int = option(1, "training processes (GPUs); more than 1 relaunches through 'accelerate launch' "
                                   "(server mode: GPUs for training, besides the vLLM server's)")
    accelerate_config: str = option("", "accelerate config file (default: recipes/accelerate/<strategy>.yaml); "
                                         "given, the run goes through 'accelerate launch' even with one process")

    # ------------------------------------------------------------------ what a user watches
    out: str = option("out/grpo", "output folder: the final model, metrics, plots, checkpoints/")
    logging_steps: int = option(1, "write a metrics row every N steps")
    eval_dataset: str | None = option(None, "held-out problems (default: eval_problems held out from dataset)")
    eval_split: str = option("test", "split of a hub eval_dataset")
    eval_problems: int = option(32, "held-out problems scored during training (0: no held-out eval)")
    eval_samples: int = option(4, "samples per held-out problem (pass@1 = mean correctness over them)")
    eval_every: int = option(50, "run the held-out eval every N steps (0: only at start and end)")
    eval_at_start: bool = option(True, "score the base model before the first step")
    eval_temperature: float = option(0.6, "sampling temperature of the held-out eval")
    eval_top_p: float = option(0.95, "nucleus sampling of the held-out eval")
    eval_max_new_tokens: int | None = option(None, "max tokens per eval completion (default: "
                                                   "max_completion_length)")
    eval_batch_size: int = option(8, "held-out problems generated together")
    plot_every: int = option(10, "redraw the PNG plots every N metric rows")
    watch: dict[str, Any] = option(
        help="behaviours counted on every step's rollouts and every held-out eval, never rewarded: name -> "
             "{pattern: REGEX} (share of completions that match) or {language: CODE, below: 0.95} (share whose "
             "reasoning has fewer than 'below' of its words in CODE: mixed language); see "
             "distill.stages.grpo.watch", flag=False, default_factory=dict)
    keep_best: bool = option(
        False, "the final model is the policy at the held-out eval with the best pass@1 (ties: the earliest), "
               "not the last step; point eval_dataset at a validation split, never at the test set you report")

    # ------------------------------------------------------------------ checkpoints
    save_steps: int = option(50, "save a resumable checkpoint every N steps")
    save_total_limit: int | None = option(2, "keep at most this many checkpoints")
    resume: bool = option(False, "continue from the last checkpoint in <out>/checkpoints")
    overwrite: bool = option(False, "delete an earlier run in --out and start over")
    final_chat_template: str = option(
        "auto", "chat template saved with the final model: keep the base's, or one that renders the R1-Zero "
                "prompt (auto: r1-zero for the r1-zero template, else keep)", choices=["auto", "keep", "r1-zero"])
    report_to: str = option("none", "extra trackers for transformers (none, wandb, tensorboard, ...)")

    def __post_init__(self) -> None:

        if not isinstance(self.rewards, dict) or not self.rewards:
            raise ValueError(f"rewards must map reward names to settings, e.g. {DEFAULT_REWARDS}")
        try:
            build_rewards(self.rewards)
        except ValueError as exc:
            raise ValueError(f"rewards: {exc}") from None
        from distill.stages.grpo.watch import build_watchers

        build_watchers(self.watch)                    # a wrong entry fails here, naming it
        kinds = [dict(v or {}).get("reward", k) for k, v in self.rewards.items()]
        if self.template == "chat" and "r1_zero_format" in kinds:
            raise ValueError("the chat prompt asks for \\boxed{}, not <answer> tags: use the 'format' reward "
                             "instead of 'r1_zero_format', or template: r1-zero")
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO compares completions within a group), got "
                             f"{self.num_generations}")
        per_round = self.per_device_train_batch_size * self.num_processes * (
            self.steps_per_generation or self.gradient_accumulation_steps)
        if per_round % self.num_generations:
            raise ValueError(
                f"a generation round holds per_device_train_batch_size x num_processes x steps_per_generation = "
                f"{per_round} completions, not a multiple of num_generations={self.num_generations} (whole groups "
                f"only); e.g. per_device_train_batch_size={self.num_generations}")
        if self.num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {self.num_processes}")
        if (self.generation != "transformers" and self.vllm_mode == "colocate"
                and self.num_processes % self.vllm_tensor_parallel_size):
            raise ValueError(f"colocate mode splits the {self.num_processes} training processes into vLLM groups of "
                             f"vllm_tensor_parallel_size={self.vllm_tensor_parallel_size}: it must divide "
                             "num_processes")
        if self.beta < 0:
            raise ValueError(f"beta (KL coefficient) must be >= 0, got {self.beta}")
        for name in ("vllm_gpu_memory_utilization", "vllm_server_gpu_memory_utilization"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.vllm_tensor_parallel_size < 1 or self.vllm_data_parallel_size < 1:
            raise ValueError("vllm_tensor_parallel_size and vllm_data_parallel_size must be >= 1")
        if self.eval_problems < 0 or self.eval_samples < 1 or self.eval_every < 0:
            raise ValueError("eval_problems must be >= 0, eval_samples >= 1 and eval_every >= 0")
        if self.keep_best and not (self.eval_dataset or self.eval_problems):
            raise ValueError("keep_best chooses among held-out evals: set eval_dataset (a validation split) or "
                             "eval_problems > 0")
        if self.keep_best and self.num_processes > 1 and self.strategy in ("zero3", "fsdp"):
            raise ValueError(f"keep_best saves the policy from the main process, which holds only a shard under "
                             f"{self.strategy}; use strategy ddp/zero2, or pick a checkpoint from eval.jsonl by hand")
        if self.max_completion_length < 1 or self.max_prompt_tokens < 1:
            raise ValueError("max_completion_length and max_prompt_tokens must be >= 1")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite deletes it: pick one")
        if self.max_steps == 0:
            raise ValueError("max_steps must be > 0, or -1 to train num_train_epochs passes")
