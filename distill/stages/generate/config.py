"""Config of ``distill generate``: long-CoT traces from a teacher, n samples per problem.

Sampling defaults are the paper's (temperature 0.6, top-p 0.95, 32768 new tokens). ``num_samples`` defaults
to 4: the paper samples "multiple responses" per prompt and keeps only correct ones without saying how many;
4 gives the rejection filter a choice while keeping the run affordable (raise it for hard problem sets, or
rerun with a larger value later: the missing samples are added to the same folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.config import option
from distill.verify import VerifySettings

if TYPE_CHECKING:
    from distill.verify import Limits, VerifySettings

# The settings that decide what a trace is. A rerun into a folder written with other values is refused
# (unless --overwrite), so one folder never mixes traces sampled differently.
TRACE_SETTINGS = ("teacher", "dataset", "split", "subset", "problem_column", "answer_column", "id_column",
                  "template", "system_prompt", "force_think", "temperature", "top_p", "max_tokens", "seed",
                  "num_shards")
# verify_workers when unset: one per CPU, at most this many
DEFAULT_VERIFY_WORKERS = 8
# What an environment variable's name looks like (POSIX portable names).
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Prefixes of API keys and tokens that also pass as variable names (hf_..., sk_..., ghp_...).
KEY_PREFIXES = ("hf_", "sk_", "ghp_", "gho_", "ghs_", "github_pat_", "gsk_", "xoxb_", "xoxp_", "glpat_")


def _looks_like_a_key(value: str) -> bool:
    """A token that happens to pass as a variable name: a known key prefix, or long, with digits and lower case
    (variable names are short upper-case words)."""
    lower, upper, digit = (bool(re.search(c, value)) for c in ("[a-z]", "[A-Z]", "[0-9]"))
    return ((value.lower().startswith(KEY_PREFIXES) and len(value) >= 24)
            or (len(value) >= 20 and lower and upper and digit)
            or (len(value) >= 32 and lower and digit))


def check_env_name(option: str, value: str) -> None:
    """Raise ValueError unless ``value`` names an environment variable. The message never repeats the value:
    a key pasted where a variable name belongs would otherwise land on the terminal and in logs."""
    if not ENV_NAME.match(value):
        raise ValueError(f"{option} must name an environment variable (letters, digits and '_', not starting "
                         "with a digit, e.g. OPENAI_API_KEY); the value given is not one (not repeated here in "
                         "case it is the key itself). Export the key in a variable and pass that variable's name")
    if value not in os.environ and _looks_like_a_key(value):
        raise ValueError(f"{option} looks like an API key or token, not the name of an environment variable (and "
                         "no such variable is set; the value is not repeated here). Export the key in a variable "
                         "and pass that variable's name, e.g. OPENAI_API_KEY")


@dataclass
class GenerateConfig:
    # ------------------------------------------------------------------ teacher and problems
    teacher: str = option("", "teacher: a local checkpoint folder or hub id (vllm, hf engines), or the served "
                          "model's name (openai engine)")
    dataset: str = option("", "problems: a local .jsonl/.json/.parquet/.csv file, a save_to_disk folder or a hub "
                          "dataset id")
    split: str | None = option(None, "dataset split (hub datasets; default: train)")
    subset: str | None = option(None, "dataset config/subset name (hub datasets)")
    problem_column: str = option("problem", "column holding the problem text")
    answer_column: str | None = option("answer", "column holding the gold answer (null: none; traces then get no "
                                       "verdict)")
    id_column: str | None = option(None, "column holding a unique problem id (default: 'id'/'unique_id' when "
                                   "present, else a hash of the problem text)")
    tests_column: str | None = option("auto", "code problems: the column holding each problem's tests (an object "
                                      "such as {test, entry_point} or {inputs, outputs}, or that as JSON text). "
                                      "auto: 'tests', else HumanEval's test + entry_point, APPS' input_output, or "
                                      "inputs + outputs; null: read no tests. A row with tests is verified by "
                                      "running its program in the sandbox, and needs no answer column")
    limit: int | None = option(None, "use only the first N problems")
    out: str = option("traces", "output folder: shard-*.jsonl traces, run.json, generate-settings.json")

    # ------------------------------------------------------------------ sampling
    engine: str = option("auto", "generation engine. auto: openai with --base-url; else vllm when it can run here "
                         "(a GPU, or vLLM's CPU build, whose KV cache is then set to 1 GiB unless "
                         "VLLM_CPU_KVCACHE_SPACE is exported); else hf (e.g. a GPU build of vLLM on a machine "
                         "without a GPU)", choices=["auto", "vllm", "hf", "openai"])
    num_samples: int = option(4, "completions per problem")
    temperature: float = option(0.6, "sampling temperature (0: greedy)")
    top_p: float = option(0.95, "nucleus sampling: keep the smallest token set with this much probability")
    max_tokens: int = option(32768, "most new tokens per completion")
    seed: int | None = option(0, "run seed; each problem's request gets a seed derived from it and the problem id "
                              "(null: unseeded, a little faster on large vLLM batches, not reproducible)")

    # ------------------------------------------------------------------ prompt
    template: str = option("chat", "prompt: 'chat' = the teacher's chat template, user turn = problem + 'Please "
                           "reason step by step, and put your final answer within \\boxed{}.'; 'r1-zero' = the "
                           "paper's plain-text R1-Zero template", choices=["chat", "r1-zero"])
    system_prompt: str | None = option(None, "system prompt for the chat template (the paper uses none)")
    force_think: bool = option(False, "start the assistant turn with '<think>\\n' so the teacher must reason first")
    tokenizer: str | None = option(None, "tokenizer to render prompts and count tokens with (default: the "
                                   "teacher's; openai engine with --openai-api completions: required unless the "
                                   "teacher name is a loadable folder or hub id)")
    trust_remote_code: bool = option(False, "allow custom model/tokenizer code from the hub")

    # ------------------------------------------------------------------ output, resume, scale-out
    num_shards: int = option(1, "split the problems into this many shards (by a hash of the id); one job each")
    shard_index: int = option(0, "which shard this job generates (0 .. num_shards-1)")
    chunk_size: int = option(64, "problems per write: finished problems are verified and saved this many at a "
                             "time (a kill -9 loses at most these and the requests in flight)")
    overwrite: bool = option(False, "discard this shard's existing traces (all of them when unsharded) and "
                             "start again, even with other settings")

    # ------------------------------------------------------------------ verification
    verify_mode: str = option("math", "answer comparison for the verdict: 'math' (math-verify) or 'aime' "
                              "(integers 0-999)", choices=["math", "aime"])
    verify_workers: int | None = option(None, "verification processes (default: one per CPU, at most 8; 0 = in this "
                                        "process)")
    verify_timeout: float = option(5.0, "seconds allowed per answer check (an overrun is verdict 'timeout')")
    code_timeout: float = option(15.0, "code problems: wall-clock seconds allowed per program run in the sandbox "
                                 "(CPU time: two thirds of it); an overrun is verdict 'timeout'")

    # ------------------------------------------------------------------ vllm engine
    tensor_parallel_size: int = option(1, "vllm: GPUs per model replica (tensor parallel)")
    data_parallel_size: int = option(1, "vllm: model replicas, each on its own group of tensor_parallel_size GPUs")
    gpu_memory_utilization: float = option(0.9, "vllm: share of each GPU's memory vLLM may use")
    max_model_len: int | None = option(None, "vllm: context length (prompt + completion; default: the model's)")
    dtype: str = option("auto", "vllm, hf: weight dtype", choices=["auto", "bfloat16", "float16", "float32"])
    enable_prefix_caching: bool = option(True, "vllm: reuse the KV cache of shared prompt prefixes")
    enforce_eager: bool = option(False, "vllm: skip CUDA graphs / compilation (faster start, slower generation)")
    inflight: int | None = option(None, "vllm: requests kept in the engine at once, per replica (default: enough "
                                  "for 1024 sequences, at least 2 x chunk_size); more keeps big GPUs busy, fewer "
                                  "loses less work to a kill -9")
    vllm_kwargs: dict[str, Any] = option({}, "vllm: extra keyword arguments for vllm.LLM (recipe or --set only), "
                                         "e.g. {max_num_seqs: 512, quantization: fp8}")

    # ------------------------------------------------------------------ hf engine
    batch_size: int = option(8, "hf: prompts per generate() call (each with num_samples sequences)")

    # ------------------------------------------------------------------ openai engine
    base_url: str | None = option(None, "openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (vllm serve, SGLang, "
                                  "a hosted R1)")
    api_key_env: str = option("OPENAI_API_KEY", "openai: the NAME of the environment variable holding the API key "
                              "(the key itself is never a config value and never written anywhere; a value that "
                              "is not a variable name is refused without being repeated)")
    openai_api: str = option("chat", "openai: 'chat' sends chat messages (the server applies its template); "
                             "'completions' sends the prompt rendered here with --tokenizer",
                             choices=["chat", "completions"])
    concurrency: int = option(16, "openai: requests in flight at once")
    request_timeout: float = option(600.0, "openai: seconds to wait for one response")
    max_retries: int = option(5, "openai: retries of a request after 429/5xx/timeouts (exponential backoff)")

    def __post_init__(self) -> None:
        # teacher and dataset may be left to a pipeline step: they are checked when the stage runs
        # (require_inputs), so a recipe section without them still validates.
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index must be in 0..{self.num_shards - 1} for --num-shards {self.num_shards}, "
                             f"got {self.shard_index}")
        if self.chunk_size < 1 or self.batch_size < 1 or (self.inflight is not None and self.inflight < 1):
            raise ValueError("chunk_size, batch_size and inflight must be >= 1")
        if self.tensor_parallel_size < 1 or self.data_parallel_size < 1:
            raise ValueError("tensor_parallel_size and data_parallel_size must be >= 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len <= self.max_tokens:
            raise ValueError(f"max_model_len ({self.max_model_len}) must exceed max_tokens ({self.max_tokens}) "
                             "plus the prompt; raise --max-model-len or lower --max-tokens")
        if self.verify_timeout <= 0 or self.code_timeout <= 0:
            raise ValueError(f"verify_timeout and code_timeout must be > 0, got {self.verify_timeout} and "
                             f"{self.code_timeout}")
        if self.concurrency < 1 or self.max_retries < 0 or self.request_timeout <= 0:
            raise ValueError("concurrency must be >= 1, max_retries >= 0, request_timeout > 0")
        if self.engine == "openai" and not self.base_url:
            raise ValueError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if self.base_url and self.engine in ("vllm", "hf"):
            raise ValueError(f"--base-url is for --engine openai, not {self.engine}; drop one of them")
        if self.api_key_env:
            check_env_name("api_key_env (--api-key-env)", self.api_key_env)

    def trace_settings(self) -> dict[str, Any]:
        """The values a resumed run must share with the folder it appends to."""
        return {k: getattr(self, k) for k in TRACE_SETTINGS}

    def require_inputs(self) -> None:
        """Raise ValueError naming the flag when the teacher or the problems are missing."""
        if not self.teacher:
            raise ValueError("no teacher: pass --teacher (a checkpoint folder, a hub id, or with --engine openai the "
                             "served model's name)")
        if not self.dataset:
            raise ValueError("no problems: pass --dataset (a .jsonl/.json/.parquet/.csv file or a hub dataset id)")

    def code_limits(self) -> Limits:
        """The sandbox's limits for one run of a code problem's program (other limits: the sandbox defaults)."""
        from distill.verify import Limits

        return Limits(wall_s=self.code_timeout, cpu_s=max(1.0, round(self.code_timeout * 2 / 3, 3)))

    def vllm_window(self) -> int:
        """Requests the vllm engine keeps in flight (per replica)."""
        if self.inflight is not None:
            return self.inflight
        return max(2 * self.chunk_size, -(-1024 // self.num_samples))

    def verify_settings(self) -> VerifySettings:
        """How verdicts are decided (the reasoning must close with </think> when the completion or the prompt
        opens <think>)."""

        workers = self.verify_workers
        if workers is None:
            workers = min(DEFAULT_VERIFY_WORKERS, os.cpu_count() or 1)
        return VerifySettings(mode=self.verify_mode, think="auto", timeout=self.verify_timeout, workers=workers)
