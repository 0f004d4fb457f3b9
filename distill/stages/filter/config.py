"""Config of ``distill filter``: rejection sampling that turns traces folders into an SFT dataset.

Every filter has an on/off switch (``--no-readability`` ...) and its thresholds here; a threshold set to
null switches that one check off. See :mod:`distill.stages.filter.stage` for what each filter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from distill.config import option
from distill.stages.filter.decontaminate import MAX_DF, MIN_OVERLAP
from distill.verify.judge import JUDGE_HELP, judge_settings

if TYPE_CHECKING:
    from distill.verify import VerifySettings
    from distill.verify.judge import JudgeSettings

# The eval sets we report on (AIME 2024, AIME 2025, MATH-500), as hub ids with an optional ":split".
DEFAULT_EVAL_SETS = ["HuggingFaceH4/aime_2024:train", "yentinglin/aime_2025:train", "HuggingFaceH4/MATH-500:test"]


@dataclass
class FilterConfig:
    # ------------------------------------------------------------------ inputs and outputs
    traces: list[str] = option([], "traces folders written by 'distill generate' (several allowed; teachers may mix)")
    out: str = option("sft-data", "output folder: the dataset (save_to_disk), parquet copy, filter_stats.json")
    overwrite: bool = option(False, "replace an existing output folder")
    user_turn: str = option("chat", "user turn of each example: 'chat' = the problem + the paper's chat suffix; "
                            "'prompt' = the trace's own prompt (its user message, or the prompt text as is)",
                            choices=["chat", "prompt"])
    language: str = option("auto", "target language of the chain of thought: 'auto' (each problem's own language) "
                           "or a code of the language identifier (en, zh, ja, ru, es, ...: distill.verify.language)")
    reasoning_format: str = option("auto", "how completions mark their reasoning: auto (each row's own, recorded), "
                                   "think (<think>...</think>), sky-t1 (<|begin_of_thought|>...), s1 "
                                   "(<|im_start|>think ... <|im_start|>answer), custom (--reasoning-delimiters)",
                                   choices=["auto", "think", "sky-t1", "s1", "custom"])
    reasoning_delimiters: list[str] = option([], "with --reasoning-format custom: the opening and closing "
                                             "delimiters of the reasoning, e.g. '<reason>' '</reason>'")
    tokenizer: str | None = option(None, "the student's tokenizer (folder or hub id) to count tokens with; "
                                   "default: the trace's completion_tokens (the teacher's count)")
    trust_remote_code: bool = option(False, "allow custom code when loading --tokenizer")
    workers: int | None = option(None, "processes for the per-row filters (default: all CPUs; 1 = in this process)")
    seed: int = option(0, "seed for random selection and the validation split")

    # ------------------------------------------------------------------ correctness
    correctness: bool = option(True, "keep only traces whose verdict against the gold answer is 'correct'")
    reverify: bool = option(False, "re-verify every trace with the truth layer, ignoring verdicts in the traces")
    gold: str = option("given", "where gold answers come from: 'given' (the traces' gold; rows without one are "
                       "reported and dropped as no_gold) or 'majority' (a problem without a gold is labelled by the "
                       "teacher's majority answer when at least --majority-min of its samples agree)",
                       choices=["given", "majority"])
    majority_min: float = option(0.5, "with --gold majority: the share of a problem's samples that must give the "
                                 "same final answer for it to become the gold")
    verify_mode: str = option("math", "answer comparison: 'math' (math-verify) or 'aime' (integers 0-999)",
                              choices=["math", "aime"])
    verify_timeout: float = option(5.0, "seconds allowed per answer check (a check that overruns is 'timeout')")
    verify_workers: int | None = option(None, "verification processes (default: all CPUs)")

    # ------------------------------------------------------------------ generative judge (opt-in)
    judge_base_url: str | None = option(None, JUDGE_HELP["base_url"])
    judge_model: str | None = option(None, JUDGE_HELP["model"])
    judge_api_key_env: str | None = option(None, JUDGE_HELP["api_key_env"])
    judge_when: list[str] = option(["uncomparable", "incorrect"], JUDGE_HELP["when"] + "; a row without a boxed "
                                   "answer is dropped by completeness anyway, so 'unparsed' is not asked by default")
    judge_concurrency: int = option(8, JUDGE_HELP["concurrency"])
    judge_timeout: float = option(120.0, JUDGE_HELP["timeout"])
    judge_retries: int = option(4, JUDGE_HELP["retries"])
    judge_backoff: float = option(1.0, JUDGE_HELP["backoff"])
    judge_max_tokens: int = option(2048, JUDGE_HELP["max_tokens"])
    judge_cache: str | None = option(None, JUDGE_HELP["cache"])

    # ------------------------------------------------------------------ completeness
    completeness: bool = option(True, "drop traces that did not finish: no </think>, empty reasoning, no answer")
    require_stop: bool = option(True, "completeness: finish_reason must be 'stop' (not 'length', 'abort' ...)")
    require_answer: bool = option(True, "completeness: the text after </think> must hold a final (boxed) answer")
    drop_truncated: bool = option(True, "completeness: drop reasoning whose last sentence is cut off (a length "
                                  "budget hit mid-sentence), even when a closing tag was appended")

    # ------------------------------------------------------------------ readability
    readability: bool = option(True, "drop chains of thought that mix languages, ramble, hold code or loop")
    min_language_consistency: float | None = option(
        0.95, "share of target-language words in the whole trace (math, numbers and variables not counted)")
    min_paragraph_language_consistency: float | None = option(
        0.8, "the same share in every paragraph: catches a CoT that switches language for a while")
    max_paragraph_chars: int | None = option(3000, "longest paragraph allowed, in characters (blank-line separated)")
    allow_code: bool = option(False, "keep reasoning with code blocks or lines of code (the paper drops them for "
                              "math; a fenced block of column arithmetic is not code, and the answer is not checked)")
    drop_special_tokens: bool = option(True, "drop traces holding leftover chat special tokens (<|im_start|>, "
                                       "<|eot_id|>, ...) in the reasoning or answer")
    max_repetition: float | None = option(0.2, "largest share of repeated word n-grams (a looping trace is near 1)")
    repetition_ngram: int = option(10, "n of the word n-grams the repetition check counts")

    # ------------------------------------------------------------------ length
    length: bool = option(True, "drop traces longer than --max-tokens")
    max_tokens: int = option(32768, "most tokens in the assistant turn (set it to the student's SFT max_length)")

    # ------------------------------------------------------------------ dedup, decontamination, selection
    dedup: bool = option(True, "drop exact and whitespace/case-normalised duplicate traces of the same problem")
    decontaminate: bool = option(True, "drop problems that share an n-gram with an eval problem")
    decontaminate_datasets: list[str] = option(
        DEFAULT_EVAL_SETS, "eval sets to check against, as hub ids 'ID[:SPLIT]' (used when no "
        "--decontaminate-files are given; needs the network or the hub cache)")
    decontaminate_files: list[str] = option(
        [], "local files of eval problems (jsonl/json/parquet/csv with a 'problem' or 'question' column); "
        "when given, they replace --decontaminate-datasets")
    ngram: int = option(8, "decontamination: n of the word n-grams compared")
    decontaminate_min_overlap: float = option(MIN_OVERLAP, "decontamination: the share of an eval problem's informative "
                                              "n-grams a text must contain to match it (1 shared n-gram was too "
                                              "few: boilerplate phrasing flagged unrelated problems)")
    decontaminate_max_df: int | None = option(MAX_DF, "decontamination: an n-gram found in more than this many eval "
                                              "problems is boilerplate and never counts (null: every n-gram counts)")
    decontaminate_traces: bool = option(False, "decontamination: also check the reasoning text, not only the problem")
    select: str = option("all", "per problem, keep 'all' surviving traces, the 'shortest' k, or a 'random' k",
                         choices=["all", "shortest", "random"])
    max_per_problem: int = option(1, "k for --select shortest|random")

    # ------------------------------------------------------------------ output
    validation_fraction: float = option(0.0, "share of problems held out as a 'validation' split (0: no split)")
    parquet: bool = option(True, "also write parquet/<split>.parquet")
    push_to_hub: str | None = option(None, "push the dataset to this hub repo (only when given; token from HF_TOKEN)")
    hub_private: bool = option(True, "with --push-to-hub: create the repo private")

    def __post_init__(self) -> None:
        if (self.reasoning_format == "custom") != bool(self.reasoning_delimiters) or \
                len(self.reasoning_delimiters) not in (0, 2):
            raise ValueError("--reasoning-format custom takes exactly two --reasoning-delimiters (open, close), "
                             "and the delimiters go only with the custom format")
        if self.language != "auto":
            from distill.verify.language import SUPPORTED

            if self.language not in SUPPORTED:
                raise ValueError(f"language must be 'auto' or a code of the language identifier "
                                 f"({', '.join(SUPPORTED)}), got {self.language!r}")
        for name in ("min_language_consistency", "min_paragraph_language_consistency", "max_repetition"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1 (or null to switch it off), got {value}")
        if self.max_paragraph_chars is not None and self.max_paragraph_chars < 1:
            raise ValueError(f"max_paragraph_chars must be >= 1 (or null to switch it off), got {self.max_paragraph_chars}")
        if self.repetition_ngram < 1:
            raise ValueError(f"repetition_ngram must be >= 1, got {self.repetition_ngram}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {self.ngram}")
        if self.select != "all" and self.max_per_problem < 1:
            raise ValueError(f"select={self.select!r} keeps max_per_problem traces per problem: set it to >= 1 "
                             f"(got {self.max_per_problem}), or use select=all")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.verify_timeout <= 0:
            raise ValueError(f"verify_timeout must be > 0 seconds, got {self.verify_timeout}")
        for name in ("workers", "verify_workers"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 (or null for all CPUs), got {value}")
        if self.decontaminate and not (self.decontaminate_files or self.decontaminate_datasets):
            raise ValueError("decontaminate is on but no eval sets are named: give --decontaminate-files or "
                             "--decontaminate-datasets, or pass --no-decontaminate")
        self.judge_settings("judge_cache.jsonl")   # the judge options fit together (ValueError otherwise)
        if self.judge_base_url is not None and not self.correctness:
            raise ValueError("the generative judge settles correctness verdicts: drop --judge-base-url, or keep "
                             "the correctness filter on")

    def verify_settings(self) -> VerifySettings:
        """How traces are re-verified (the completion must close its <think> when it opens one)."""
        from distill.verify import VerifySettings

        return VerifySettings(mode=self.verify_mode, think="auto", timeout=self.verify_timeout,
                              workers=self.verify_workers, reasoning_format=self.reasoning_format,
                              reasoning_delimiters=self.delimiters())

    def judge_settings(self, default_cache: str) -> JudgeSettings | None:
        """The generative judge asked for (None when off); its cache defaults to ``default_cache``."""
        return judge_settings(self, default_cache)

    def delimiters(self) -> tuple[str, str] | None:
        """The custom reasoning delimiters as a pair (None unless --reasoning-format custom)."""
        return (self.reasoning_delimiters[0], self.reasoning_delimiters[1]) if self.reasoning_delimiters else None
