"""Config of ``distill sft``: supervised fine-tuning of a student on the filtered traces (TRL's SFTTrainer).

The per-student values (learning rate, batch, launch strategy, context extension) live in
``recipes/students/<name>.yaml``; the defaults here are a generic mid-size setting. Checks that need only the
student registry (the base's position limit, option combinations) run here, offline, so ``--print-config``
validates a recipe without touching a model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from distill.config import option
from distill.errors import DistillError
from distill.launch import recipes_dir
from distill.students import get_student

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
# Options that change how a run is driven, not what it trains: they are left out of the training fingerprint,
# so a run resumed with --resume or another --plan setting still counts as the same run.
RUN_CONTROL = ("resume", "overwrite", "plan", "gpu_memory_gib", "keep_checkpoints", "dataset_num_proc", "report_to",
               "ddp_timeout")


@dataclass
class SFTStageConfig:
    # ------------------------------------------------------------------ what to train, on what, where
    student: str = option("", "student name in the registry: qwen-1.5b, qwen-7b, llama-8b, qwen-14b, qwen-32b, "
                          "llama-70b, tiny-qwen, tiny-llama; without --recipe, its recipes/students/<name>.yaml is "
                          "read (flags and --set override it)")
    model: str = option("", "model to train, a local folder or hub id (default: the student's base model; the "
                        "tiny students have none: make one with 'distill tiny')")
    dataset: str = option("", "SFT data: a 'distill filter' folder (datasets.save_to_disk), a .jsonl/.parquet file "
                          "with a 'messages' column, or a hub dataset id")
    dataset_split: str = option("train", "split to train on when the dataset has several")
    eval_split: str = option("validation", "split for the eval loss, used when the dataset has it ('' = none)")
    out: str = option("", "output folder: the student (HF format), run.json, loss.png (default: out/<student>)")
    overwrite: bool = option(False, "delete an existing output folder (and its checkpoints) and start over")
    resume: bool = option(False, "continue from the last checkpoint in OUT/checkpoints even if settings changed "
                          "(an interrupted run with the same settings resumes without it)")
    plan: bool = option(False, "print parameters, memory per GPU, tokens per step and steps per epoch; load no "
                        "weights, train nothing")
    trust_remote_code: bool = option(False, "allow custom model code from the hub (off: only built-in architectures)")

    # ------------------------------------------------------------------ schedule
    max_steps: int = option(-1, "stop after this many optimizer steps (-1: run num_train_epochs)")
    num_train_epochs: float = option(3.0, "passes over the dataset")
    learning_rate: float = option(5e-5, "peak learning rate (AdamW)")
    lr_scheduler_type: str = option("cosine_with_min_lr", "learning-rate schedule after warm-up",
                                    choices=["cosine_with_min_lr", "cosine", "linear", "constant_with_warmup"])
    min_lr_rate: float = option(0.1, "cosine_with_min_lr: final learning rate as a fraction of the peak")
    warmup_ratio: float = option(0.03, "share of the steps spent warming up the learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    seed: int = option(42, "seed for data order, initialisation of adapters, dropout")

    # ------------------------------------------------------------------ sequence and batch
    max_length: int = option(32768, "longest training sequence in tokens (and the packed row length); TRL's "
                             "default of 1024 would cut R1 traces")
    overlong: str = option("drop", "examples longer than max_length: 'drop' them (counted in run.json), stop with "
                           "an 'error', or 'truncate' (the student then never sees their end nor learns to stop)",
                           choices=["drop", "error", "truncate"])
    per_device_train_batch_size: int = option(1, "rows per device per micro-step (a packed row holds max_length tokens)")
    gradient_accumulation_steps: int = option(8, "micro-steps per optimizer step")
    packing: bool = option(True, "pack examples into rows of max_length (best-fit decreasing, no example is cut; "
                           "packed examples do not attend to each other)")
    assistant_only_loss: bool = option(True, "train only on assistant tokens (the <think> trace, answer and EOS)")

    # ------------------------------------------------------------------ model and memory
    chat_format: str = option("auto", "role tags of the training chat template: 'chatml' (Qwen's <|im_start|>, EOS "
                              "<|im_end|>), 'llama3' (header tags, EOS <|eot_id|>), 'distill' (<|user|>/<|assistant|>"
                              ", added as special tokens when missing); 'auto' picks from the base's vocabulary",
                              choices=["auto", "chatml", "llama3", "distill"])
    rope_theta: float | None = option(None, "context extension: RoPE base frequency written into the model config "
                                      "(null: keep the base's)")
    max_position_embeddings: int | None = option(None, "context extension: position limit written into the model "
                                                 "config (null: keep the base's)")
    bf16: bool = option(True, "bfloat16 mixed precision on a GPU (CPU runs use float32)")
    gradient_checkpointing: bool = option(True, "recompute activations in the backward pass (needed for 32k tokens)")
    activation_offloading: bool = option(False, "move saved activations to CPU memory (the 70B at 32k tokens)")
    attn_implementation: str = option("auto", "attention kernel; auto: flash_attention_2 when installed on a GPU, "
                                      "else sdpa", choices=["auto", "sdpa", "eager", "flash_attention_2"])
    liger: str = option("auto", "Liger fused kernels: auto = on when liger-kernel is installed and a GPU is present",
                        choices=["auto", "on", "off"])

    # ------------------------------------------------------------------ LoRA / QLoRA
    lora: bool = option(False, "train LoRA adapters instead of all weights (peft)")
    qlora: bool = option(False, "LoRA on a 4-bit (NF4) base (bitsandbytes, CUDA only)")
    lora_r: int = option(64, "LoRA rank")
    lora_alpha: int = option(128, "LoRA alpha (scale = alpha / r)")
    lora_dropout: float = option(0.05, "LoRA dropout")
    lora_target_modules: list[str] = option(ALL_LINEAR, "modules that get adapters")
    merge_lora: bool = option(True, "also export the base with the adapters merged in, as the student (the adapter "
                              "stays in OUT/adapter)")

    # ------------------------------------------------------------------ launch
    strategy: str = option("ddp", "multi-GPU strategy, recipes/accelerate/<strategy>.yaml", choices=list(STRATEGIES))
    num_processes: int = option(1, "processes (GPUs) in total; more than 1 relaunches through 'accelerate launch'")
    accelerate_config: str = option("", "accelerate config file (default: recipes/accelerate/<strategy>.yaml); "
                                    "given, the run goes through 'accelerate launch' even with one process")
    gpu_memory_gib: float = option(80.0, "--plan: memory per GPU to check the estimate against")
    ddp_timeout: int = option(1800, "seconds a rank waits in a collective (a barrier, a gradient all-reduce) before "
                              "the run fails; the process group is made with it")

    # ------------------------------------------------------------------ logging and checkpoints
    logging_steps: int = option(5, "log the loss every N optimizer steps")
    save_steps: int = option(200, "write a resumable checkpoint every N optimizer steps")
    save_total_limit: int = option(2, "checkpoints kept in OUT/checkpoints")
    keep_checkpoints: bool = option(False, "keep OUT/checkpoints after a finished run (they hold optimizer states: "
                                    "about 16 bytes per parameter)")
    eval_steps: int = option(0, "eval loss every N steps when an eval split exists (0: once, at the end)")
    report_to: str = option("none", "experiment tracker", choices=["none", "tensorboard", "wandb"])
    dataset_num_proc: int | None = option(None, "processes per rank for tokenizing the dataset (default: one); the "
                                          "ranks of a launched run each tokenize their own share of the rows")

    @classmethod
    def implied_recipe(cls, values: dict[str, Any]) -> Path | None:
        """``recipes/students/<student>.yaml`` when a student is named without ``--recipe`` (flags and ``--set``
        still override it); None when there is no such file (an unknown name is reported by the config)."""

        student = values.get("student")
        if not isinstance(student, str) or not student or Path(student).name != student:
            return None
        path = recipes_dir() / "students" / f"{student}.yaml"
        return path if path.is_file() else None

    def __post_init__(self) -> None:

        if not self.student:
            raise ValueError("no student: pass --student NAME (or a recipe from recipes/students/)")
        try:
            student = get_student(self.student)
        except DistillError as exc:
            raise ValueError(str(exc)) from None
        if not self.out:
            self.out = f"out/{self.student}"
        for name in ("max_length", "per_device_train_batch_size", "gradient_accumulation_steps", "num_processes",
                     "logging_steps", "save_steps", "save_total_limit", "lora_r", "lora_alpha", "ddp_timeout"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (use num_train_epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.min_lr_rate <= 1:
            raise ValueError(f"min_lr_rate must be in [0, 1], got {self.min_lr_rate}")
        if self.qlora and not self.lora:
            raise ValueError("qlora trains LoRA adapters on a 4-bit base: set lora: true as well")
        if not self.lora_target_modules and self.lora:
            raise ValueError("lora_target_modules is empty: name the modules that get adapters")
        if self.eval_steps < 0:
            raise ValueError(f"eval_steps must be >= 0, got {self.eval_steps}")
        if self.rope_theta is not None and self.rope_theta <= 0:
            raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")
        positions = self.max_position_embeddings or student.max_positions
        if self.max_length > positions:
            where = ("max_position_embeddings" if self.max_position_embeddings
                     else f"{self.student}'s {student.max_positions} positions")
            raise ValueError(
                f"max_length {self.max_length} exceeds {where}: lower max_length, or extend the context (set "
                f"max_position_embeddings and rope_theta), as recipes/students/{self.student}.yaml does (read "
                f"by default when no --recipe is given)")


def train_fingerprint(cfg: SFTStageConfig) -> str:
    """A hash of what changes what is trained: the options (not how the run is driven; see ``RUN_CONTROL``) and
    the dataset's identity (:func:`dataset_identity`), so a re-filtered dataset is never taken for the old one."""
    import hashlib
    import json

    values: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in RUN_CONTROL}
    values["dataset_identity"] = dataset_identity(cfg.dataset)
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_identity(dataset: str | None) -> str | None:
    """A local dataset's identity: its run id when ``distill filter`` wrote it, else a hash of its files (the
    ``cache-*`` files datasets writes beside them left out); None for a hub id, whose revision is the hub's."""
    import hashlib

    from distill.runinfo import read_run

    if not dataset or not Path(dataset).exists():
        return None
    path = Path(dataset)
    rec = read_run(path) if path.is_dir() else None
    if rec and rec.get("run_id"):
        return str(rec["run_id"])
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*"))
                   if p.is_file() and not p.name.startswith("cache-"))
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{f.stat().st_size}:".encode())
        with f.open("rb") as fh:
            digest.update(hashlib.sha256(fh.read(1 << 20)).digest())   # the first MiB: content, not timestamps
    return digest.hexdigest()[:16]
