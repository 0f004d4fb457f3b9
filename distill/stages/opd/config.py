"""Config of ``distill opd``: on-policy distillation of a student from a teacher (TRL's IW-OPD trainer, JSD mode).

Field names follow TRL's ``IWOPDConfig`` where an option passes straight through (``lmbda``, ``beta``,
``loss_top_k``, ``temperature``, ``vllm_*``), so TRL's documentation applies to them. Defaults differ from TRL's
where on-policy distillation as the field practises it says otherwise: ``distillation_objective`` is TRL's ``jsd``
(the generalized JSD, not IW-OPD's importance weighting), ``beta`` 1.0 (reverse KL), ``loss_top_k`` 0 (the full
vocabulary, with an in-process teacher), ``lmbda`` 1.0 (every batch sampled from the student) and ``top_p`` 1.0
(samples from the student's own distribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.config import option

# Options that change how a run is driven or watched, not what it trains: a run resumed with other values of
# these is still the same run (see distill.stages.opd.output).
RUN_CONTROL = ("resume", "overwrite", "plot_every", "report_to", "keep_checkpoints", "student_shape",
               "teacher_shape", "vllm_server_timeout")


@dataclass
class OPDConfig:
    # ------------------------------------------------------------------ student, teacher, data
    student: str = option("", "the model to train, a folder or hub id: usually an SFT student ('distill sft' output)")
    teacher: str = option("", "the teacher, a folder or hub id; its tokenizer must have the student's vocabulary. "
                              "With teacher_server_url its weights stay on that server (only its tokenizer loads)")
    teacher_server_url: str | None = option(None, "score with a teacher served apart from the trainer: the root URL "
                                                  "(http://HOST:PORT) of `vllm serve TEACHER` (its prompt logprobs; "
                                                  "top-1 support, so loss_top_k must be 1 when beta > 0)")
    dataset: str = option("", "training problems: hub id or .jsonl/.json/.parquet/.csv (columns problem, answer)")
    dataset_split: str = option("train", "split of a hub dataset")
    dataset_subset: str | None = option(None, "subset (config name) of a hub dataset")
    problem_column: str = option("problem", "column holding the problem text")
    answer_column: str = option("answer", "column holding the gold answer (scores the student's samples; '' = none)")
    id_column: str | None = option(None, "column holding a problem id (default: id/unique_id if present)")
    limit: int | None = option(None, "use at most this many problems")
    offpolicy_dataset: str | None = option(None, "SFT rows whose assistant turns are the off-policy batches (a "
                                                 "'distill filter' folder or .jsonl/.parquet with 'messages' and "
                                                 "'id'); needed when lmbda < 1")
    max_prompt_tokens: int = option(512, "drop problems whose rendered prompt is longer than this many tokens")
    trust_remote_code: bool = option(False, "allow model/tokenizer code from the hub (off unless you trust it)")
    out: str = option("out/opd", "output folder: the distilled student (an HF folder), metrics, plots, run.json")

    # ------------------------------------------------------------------ distillation (TRL's IWOPDConfig)
    lmbda: float = option(1.0, "share of batches sampled from the student (on-policy); the rest are the "
                               "offpolicy_dataset's traces (TRL draws on/off per gradient-accumulation slice)")
    beta: float = option(1.0, "divergence: 1.0 = reverse KL(student || teacher) per token, 0.0 = forward KL, "
                              "0.5 = JSD (TRL's generalized JSD)")
    loss_top_k: int = option(0, "restrict the divergence to the top-k tokens (+ a tail bucket); 0 = the full "
                                "vocabulary (in-process teacher only; a server teacher needs 1 when beta > 0)")
    temperature: float = option(1.0, "sampling temperature of the student, also applied to both models' logits "
                                     "in the loss (1.0: the divergence between the models themselves)")
    top_p: float = option(1.0, "nucleus sampling of the student (1.0: its own distribution)")
    max_completion_length: int = option(1024, "max tokens per sampled completion")
    verify_mode: str = option("math", "how sampled answers are scored against the gold: 'math' (math-verify) or "
                                      "'aime' (integers 0-999)", choices=["math", "aime"])

    # ------------------------------------------------------------------ optimisation
    learning_rate: float = option(1e-6, "peak learning rate (AdamW)")
    lr_scheduler_type: str = option("constant", "transformers scheduler name (constant, cosine, linear, "
                                                "cosine_with_min_lr, ...)")
    min_lr_rate: float = option(0.1, "cosine_with_min_lr: final learning rate as a share of the peak")
    warmup_steps: float = option(0, "learning-rate warm-up: steps (>= 1) or a share of all steps (< 1)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping")
    max_steps: int = option(-1, "optimizer steps (-1: num_train_epochs passes over the problems)")
    num_train_epochs: float = option(1.0, "passes over the problems when max_steps is -1")
    per_device_train_batch_size: int = option(8, "sequences per device per micro-batch")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step (one generation round each step)")
    seed: int = option(0, "seed of sampling, shuffling, the on/off-policy draws")

    # ------------------------------------------------------------------ generation engine
    generation: str = option("auto", "student sampling: vllm (GPUs), transformers (anywhere), auto (vllm when CUDA "
                                     "and vllm are present)", choices=["auto", "vllm", "transformers"])
    vllm_mode: str = option("colocate", "colocate: vLLM shares the training GPUs; server: `trl vllm-serve` of the "
                                        "student on other GPUs", choices=["colocate", "server"])
    vllm_tensor_parallel_size: int = option(1, "colocate: tensor-parallel size of the student's vLLM engine")
    vllm_gpu_memory_utilization: float = option(0.3, "colocate: share of each GPU vLLM may take")
    vllm_enable_sleep_mode: bool = option(False, "colocate: offload vLLM weights/cache during the optimizer step")
    vllm_max_model_length: int | None = option(None, "vLLM context (default: the model's)")
    vllm_server_host: str = option("localhost", "student server mode: host of `trl vllm-serve`")
    vllm_server_port: int = option(8001, "student server mode: port (8000 is usually the teacher's)")
    vllm_server_timeout: float = option(600.0, "seconds to wait for the student's vLLM server")

    # ------------------------------------------------------------------ hardware and launch
    bf16: bool | None = option(None, "bfloat16 mixed precision (default: yes on CUDA, no on CPU)")
    gradient_checkpointing: bool = option(True, "recompute the student's activations to save memory")
    strategy: str = option("ddp", "multi-GPU strategy, recipes/accelerate/<strategy>.yaml",
                           choices=["ddp", "zero2", "zero3", "fsdp"])
    num_processes: int = option(1, "training processes (GPUs); more than 1 relaunches through 'accelerate launch'")
    accelerate_config: str = option("", "accelerate config file (default: recipes/accelerate/<strategy>.yaml)")
    student_shape: str = option("", "`distill pipeline --plan`: the student's row in distill.students (e.g. "
                                    "qwen-7b) when --student is a path the plan cannot read offline")
    teacher_shape: str = option("", "`distill pipeline --plan`: the teacher's row (a student name or a teacher hub "
                                    "id of distill.students)")

    # ------------------------------------------------------------------ what a user watches, checkpoints
    logging_steps: int = option(1, "write a metrics row every N steps")
    plot_every: int = option(10, "redraw the PNG curves every N metric rows")
    save_steps: int = option(50, "save a resumable checkpoint every N steps")
    save_total_limit: int | None = option(2, "keep at most this many checkpoints")
    keep_checkpoints: bool = option(False, "keep OUT/checkpoints after a finished run (they hold optimizer states)")
    resume: bool = option(False, "continue from the last checkpoint in OUT/checkpoints even if settings changed "
                                 "(an interrupted run with the same settings resumes without it)")
    overwrite: bool = option(False, "delete an earlier run in --out and start over")
    report_to: str = option("none", "extra trackers for transformers (none, wandb, tensorboard, ...)")

    def __post_init__(self) -> None:
        for name in ("lmbda", "beta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.lmbda < 1.0 and not self.offpolicy_dataset:
            raise ValueError(f"lmbda {self.lmbda} < 1 trains some batches off-policy, on teacher traces: set "
                             "offpolicy_dataset (a 'distill filter' folder), or lmbda: 1.0")
        if self.loss_top_k < 0:
            raise ValueError(f"loss_top_k must be >= 0 (0 = full vocabulary), got {self.loss_top_k}")
        if self.teacher_server_url and self.teacher_server_url.rstrip("/").endswith("/v1"):
            raise ValueError(f"teacher_server_url is the server's root, http://HOST:PORT (TRL adds /v1/completions): "
                             f"drop the /v1 from {self.teacher_server_url}")
        if self.teacher_server_url and self.beta > 0 and self.loss_top_k != 1:
            raise ValueError(f"a server teacher returns only its top-1 logprobs: with beta {self.beta} > 0 set "
                             f"loss_top_k: 1 (got {self.loss_top_k}), or use an in-process teacher")
        if self.teacher_server_url and self.beta == 0 and self.loss_top_k < 1:
            raise ValueError("a server teacher with beta 0 (forward KL) needs loss_top_k >= 1 (its top-k logprobs)")
        for name in ("max_completion_length", "max_prompt_tokens", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "num_processes", "logging_steps", "save_steps", "plot_every",
                     "vllm_tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"temperature must be > 0 and top_p in (0, 1], got {self.temperature} and {self.top_p}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use num_train_epochs) or >= 1, got {self.max_steps}")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ValueError(f"vllm_gpu_memory_utilization must be in (0, 1], got {self.vllm_gpu_memory_utilization}")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite deletes it: pick one")

    def trains(self) -> dict[str, Any]:
        """The options that decide what is trained (resume/overwrite and the watching options left out)."""
        from distill.config import config_to_dict

        return {k: v for k, v in config_to_dict(self).items() if k not in RUN_CONTROL}
