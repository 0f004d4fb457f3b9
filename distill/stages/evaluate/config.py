"""Config of ``distill eval``: the DeepSeek-R1 evaluation protocol through lm-eval, or re-scoring a file.

The recipe section is ``eval:``. Defaults are the paper's: temperature 0.6, top-p 0.95, up to 32,768 new
tokens, n samples per problem (16 here, 64 in the paper's table), the chat prompt with no system turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.config import option
from distill.verify.judge import JUDGE_HELP, JUDGE_WHEN, judge_settings

if TYPE_CHECKING:
    from distill.verify import VerifySettings
    from distill.verify.judge import JudgeSettings

TASK_NAMES = ["aime24", "aime25", "math500", "custom", "humaneval"]   # tasks.TASKS + tasks.CODE_TASKS
DEFAULT_SAMPLES = 16
# lm-eval model arguments that model_args must not override: distill sets them from its own options, checked against
# the prompts and the model's positions (a smaller max_model_len there would make lm-eval cut prompts from the left:
# lm_eval.models.utils.maybe_truncate).
SHADOWED_MODEL_ARGS = ("pretrained", "max_model_len", "max_length", "max_gen_toks", "seed", "tensor_parallel_size",
                       "data_parallel_size")


@dataclass
class EvalConfig:
    # ------------------------------------------------------------------ what to evaluate
    task: str = option("aime24", "benchmark (custom: any local problem file, needs --data-file)", choices=TASK_NAMES)
    model: str | None = option(None, "model folder or hub id to sample from (or use --completions)")
    completions: str | None = option(None, "re-score this jsonl of {id, answer, completions: [...]} rows instead "
                                           "of running a model")
    data_file: str | None = option(None, "local copy of the problems (jsonl/json/parquet/csv); default: the "
                                         "task's hub data set (needs the network). With --completions, the gold "
                                         "answers are taken from it by id")
    limit: int | None = option(None, "only the first N problems (for a quick look; results say so)")
    out: str | None = option(None, "output folder (default: out/eval/<model name>/<task>, or "
                                   "out/eval/rescore/<task> with --completions)")
    overwrite: bool = option(False, "delete this command's earlier outputs in --out and start over")

    # ------------------------------------------------------------------ sampling (the paper's protocol)
    samples: int | None = option(None, f"n, completions per problem (default {DEFAULT_SAMPLES}; the paper's "
                                       "table uses 64; with --completions: the most any row has)")
    temperature: float = option(0.6, "sampling temperature")
    top_p: float = option(0.95, "nucleus sampling top-p")
    max_tokens: int = option(32768, "most new tokens per completion")
    seed: int = option(0, "sampling seed (with --data-parallel-size > 1 each sampled completion gets a seed of its "
                          "own, derived from this, the prompt and the copy)")
    force_think: bool = option(False, "start the answer with '<think>\\n' (prefill), as DeepSeek recommends for "
                                      "models that sometimes skip their reasoning")

    # ------------------------------------------------------------------ engine
    backend: str = option("vllm", "lm-eval model backend", choices=["vllm", "hf"])
    dtype: str = option("auto", "weights dtype (auto: the model's own on GPU, float32 on CPU)",
                        choices=["auto", "bfloat16", "float16", "float32"])
    tensor_parallel_size: int = option(1, "vllm: GPUs per model replica")
    data_parallel_size: int = option(1, "vllm: model replicas (needs ray)")
    max_model_len: int | None = option(None, "vllm/hf context length (default: longest prompt + --max-tokens; "
                                             "must cover both and stay within the model's positions)")
    gpu_memory_utilization: float = option(0.9, "vllm: share of GPU memory for weights + KV cache")
    batch_size: str = option("auto", "lm-eval batch size (auto: vllm schedules itself; hf uses n)")
    chunk_completions: int = option(2048, "completions per lm-eval call; each finished chunk is saved and a "
                                          "rerun skips it (0: everything in one call)")
    trust_remote_code: bool = option(False, "allow custom code from the model repository")
    model_args: dict[str, Any] = option({}, "extra keyword arguments for lm-eval's model (e.g. enforce_eager: "
                                            "true); not the ones distill sets from its own options (max_model_len, "
                                            "seed, parallel sizes ...)", flag=False)

    # ------------------------------------------------------------------ scoring (distill.verify)
    verify_mode: str | None = option(None, "answer comparison (default: the task's; aime: integers 0-999, "
                                           "'025' == '25'; math: math-verify)", choices=["math", "aime"])
    think: str = option("auto", "reasoning must close with </think> before the answer: auto (when the "
                                "completion or the prompt opens <think>), required, optional",
                        choices=["auto", "required", "optional"])
    prompt_has_think: bool = option(False, "with --completions: the prompts ended with <think> (prefill), so "
                                           "the completions hold no opening tag")
    fallback: bool = option(False, "also accept 'the answer is X' when there is no \\boxed{} (the paper does not)")
    verify_timeout: float = option(5.0, "seconds allowed per answer check")
    verify_workers: int | None = option(None, "verification processes (default: one per CPU; 0: in this process)")

    # ------------------------------------------------------------------ generative judge (opt-in; math tasks)
    judge_base_url: str | None = option(None, JUDGE_HELP["base_url"])
    judge_model: str | None = option(None, JUDGE_HELP["model"])
    judge_api_key_env: str | None = option(None, JUDGE_HELP["api_key_env"])
    judge_when: list[str] = option(list(JUDGE_WHEN), JUDGE_HELP["when"])
    judge_concurrency: int = option(8, JUDGE_HELP["concurrency"])
    judge_timeout: float = option(120.0, JUDGE_HELP["timeout"])
    judge_retries: int = option(4, JUDGE_HELP["retries"])
    judge_backoff: float = option(1.0, JUDGE_HELP["backoff"])
    judge_max_tokens: int = option(2048, JUDGE_HELP["max_tokens"])
    judge_cache: str | None = option(None, JUDGE_HELP["cache"])

    def __post_init__(self) -> None:
        # What to evaluate (--model or --completions) is checked when the command runs, so recipes may leave
        # it to a flag or a pipeline step (see check_ready).
        if self.model is not None and self.completions is not None:
            raise ValueError("pass either --model (sample with lm-eval) or --completions (re-score a file), not both")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or null for all problems), got {self.limit}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        for name in ("tensor_parallel_size", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_model_len is not None and self.max_model_len <= self.max_tokens:
            raise ValueError(f"max_model_len ({self.max_model_len}) must exceed max_tokens ({self.max_tokens}): it "
                             "holds the prompt and the completion")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.batch_size != "auto" and not (self.batch_size.isdigit() and int(self.batch_size) > 0):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if self.chunk_completions < 0:
            raise ValueError(f"chunk_completions must be >= 0 (0: one call), got {self.chunk_completions}")
        if self.verify_timeout <= 0:
            raise ValueError(f"verify_timeout must be > 0 seconds, got {self.verify_timeout}")
        if self.verify_workers is not None and self.verify_workers < 0:
            raise ValueError(f"verify_workers must be >= 0, got {self.verify_workers}")
        shadowed = [k for k in SHADOWED_MODEL_ARGS if k in self.model_args]
        if shadowed:
            raise ValueError(f"model_args sets {', '.join(shadowed)}: distill sets these from its own options "
                             "(--model, --max-model-len, --max-tokens, --seed, --tensor-parallel-size, "
                             "--data-parallel-size); pass them there")
        self.judge_settings("judge_cache.jsonl")   # the judge options fit together (ValueError otherwise)
        if self.completions is not None and self.force_think:
            raise ValueError("--force-think is a sampling option; with --completions say --prompt-has-think "
                             "if the prompts were prefilled with <think>")

    def check_ready(self) -> None:
        """Checks that need the whole command line, not one recipe section: raise ValueError with the fix."""
        if self.model is None and self.completions is None:
            raise ValueError("nothing to evaluate: pass --model DIR_OR_HUB_ID to sample, or --completions FILE to "
                             "re-score existing completions")
        if self.task == "custom" and self.data_file is None:
            raise ValueError("--task custom has no default data set: pass --data-file FILE")

    def judge_settings(self, default_cache: str) -> JudgeSettings | None:
        """The generative judge asked for (None when off); its cache defaults to ``default_cache``."""
        return judge_settings(self, default_cache)

    def verify_settings(self, mode: str | None = None) -> VerifySettings:
        """How completions are checked; ``mode`` defaults to --verify-mode, else the task's own."""
        from distill.stages.evaluate.tasks import get_task
        from distill.verify import VerifySettings

        return VerifySettings(mode=mode or self.verify_mode or get_task(self.task).mode, think=self.think,
                              fallback=self.fallback, timeout=self.verify_timeout, workers=self.verify_workers)
