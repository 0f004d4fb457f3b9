"""``distill filter``: rejection sampling — traces folders in, a clean SFT dataset out.

Reads one or more traces folders (``distill generate`` output; teachers may be mixed), then drops, in this
order (a row's drop reason is the first filter it fails; every failure is counted too):

1. decontamination — the problem shares an 8-gram with AIME 2024 / AIME 2025 / MATH-500;
2. completeness — stopped normally, ``</think>`` closed after non-empty reasoning, a final answer after it;
3. correctness — the truth layer's verdict against the gold answer is "correct" (re-verified when missing);
4. readability — language consistency, no mixed-language paragraph, no wall of text, no code, no loop;
5. length — at most ``max_tokens`` in the assistant turn (the student's tokenizer when given);
6. dedup — exact and whitespace/case-normalised repeats within a problem;
7. selection — at most k per problem (shortest or seeded random), or all.

Writes into ``--out``: the dataset (``save_to_disk``; ``messages`` + id, sample, source, teacher,
num_tokens), ``parquet/<split>.parquet``, ``filter_stats.json``, ``dropped.jsonl`` (every dropped row's
key and reasons), ``lengths.png`` and ``run.json``. Everything is built in a ``.partial`` folder first and
moved into place at the end, so an interrupted run leaves no half dataset; rerunning starts over (the
inputs are never changed). With the generative judge (opt-in: :mod:`distill.stages.filter.judging`), the
rows whose verdict the rules cannot settle are asked about after the row filters, and only those that nothing
but correctness would drop (a contaminated, incomplete, unreadable or too long row is never sent out);
``judged.jsonl`` lists them and ``judge_cache.jsonl`` keeps its answers for the next run.

Departures from the paper: the R1 paper names the readability criteria (mixed languages, long paragraphs,
code blocks) but not their thresholds; ours are in the recipe. It does not say how it decontaminated; we
use word n-gram overlap with the eval problems. Repetition and length limits are ours.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill import outdir
from distill.data.jsonl import ReadReport
from distill.data.traces import iter_traces
from distill.errors import ConfigError, DataError, DistillError
from distill.runinfo import RunRecord
from distill.stages.filter import dataset as sft_dataset
from distill.stages.filter.apply import Outcome, count_tokens, fill_verdicts, filter_traces
from distill.stages.filter.config import FilterConfig
from distill.stages.filter.decontaminate import EvalSet, NgramIndex, build_index
from distill.stages.filter.judging import (
    JUDGED_FILE,
    judge_columns,
    judge_traces,
    keep_cache,
    leftovers_only,
    open_judge,
    write_judged,
)
from distill.stages.filter.rules import FilterContext
from distill.stages.filter.stats import build_stats, format_table
from distill.stages.filter.trace import Trace, prepare
from distill.verify import detect_format, extract_answer
from distill.verify.normalize import canonical_text

if TYPE_CHECKING:
    from distill.verify.judge_client import Judge

STATS_FILE = "filter_stats.json"
DROPPED_FILE = "dropped.jsonl"
HISTOGRAM_FILE = "lengths.png"


def run(cfg: FilterConfig) -> Path:
    if not cfg.traces:
        raise ConfigError("no traces folders: pass --traces DIR [DIR ...] (folders written by 'distill generate')")
    out = Path(cfg.out)
    if not outdir.is_empty(out) and not leftovers_only(out):
        if not cfg.overwrite:
            raise DistillError(f"{out} exists and is not empty; pass --overwrite to replace it, or another --out")
        outdir.check_deletable(out, "filter")          # before any work: only a folder 'distill filter' made
    else:
        outdir.check_writable(out)                      # fails now, not after the work, if --out is unwritable
    folders = [Path(f) for f in cfg.traces]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(f"traces folder not found: {folder} (pass folders written by 'distill generate')")
    judge = open_judge(cfg, out)                        # a missing API key fails now, before any work
    try:
        return _filter(cfg, out, folders, judge)
    finally:
        if judge is not None:
            judge.close()


def _filter(cfg: FilterConfig, out: Path, folders: list[Path], judge: Judge | None) -> Path:
    inputs: dict[str, str | Path] = {f"traces[{i}]": f for i, f in enumerate(folders)}
    if cfg.decontaminate:
        inputs.update({f"decontaminate_files[{i}]": f for i, f in enumerate(cfg.decontaminate_files)})
    if cfg.tokenizer and Path(cfg.tokenizer).exists():
        inputs["tokenizer"] = cfg.tokenizer
    record = RunRecord("filter", cfg, inputs=inputs)
    timing: dict[str, float] = {}
    start = time.perf_counter()

    report = ReadReport()
    traces = read_traces(folders, cfg, report)
    timing["read"] = time.perf_counter() - start
    bad_lines = [str(b) for b in report.bad]
    if not traces:
        raise DataError(f"no readable trace rows in {', '.join(map(str, folders))}: {report.summary()}")
    check_inputs(traces, cfg)

    index: NgramIndex | None = None
    eval_sets: list[EvalSet] = []
    if cfg.decontaminate:
        t0 = time.perf_counter()
        index, eval_sets = build_index(cfg.decontaminate_files or cfg.decontaminate_datasets, cfg.ngram,
                                       max_df=cfg.decontaminate_max_df, min_overlap=cfg.decontaminate_min_overlap)
        timing["decontamination_index"] = time.perf_counter() - t0

    verification, golds = verify_and_count(traces, cfg, timing)
    judged: dict[str, Any] = {"on": False}

    def settle(rows: list[Trace]) -> None:          # the rows that only their verdict decides
        nonlocal judged
        t0 = time.perf_counter()
        judged = judge_traces(rows, cfg, judge)      # type: ignore[arg-type]
        timing["judge"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    outcome = filter_traces(traces, FilterContext(cfg, index), workers=cfg.workers,
                            settle=settle if judge is not None else None)
    timing["filters_wall"] = time.perf_counter() - t0 - timing.get("judge", 0.0)

    hints = format_hints(traces, outcome, cfg)
    for hint in hints:
        print(hint)
    filters_on = {"decontamination": cfg.decontaminate, "completeness": cfg.completeness,
                  "correctness": cfg.correctness, "readability": cfg.readability, "length": cfg.length,
                  "dedup": cfg.dedup, "selection": cfg.select != "all"}
    extra = {
        "folders_in": [str(f) for f in folders],
        "verification": verification,
        "token_count": f"tokens ({cfg.tokenizer})" if cfg.tokenizer else "completion tokens (teacher)",
        "decontamination": decontamination_report(cfg, traces, outcome, index, eval_sets),
        "selection": {"mode": cfg.select, "max_per_problem": cfg.max_per_problem if cfg.select != "all" else None},
        "format_hints": hints,
        "golds": golds,
        "judge": judged,
    }
    stats = build_stats(traces, outcome, filters=filters_on, bad_lines=bad_lines, extra=extra)
    splits = write_outputs(out, cfg, traces, outcome, stats, record, timing, start, judge=judge)
    print(format_table(stats))
    shown = ", ".join(f"{n:,} {name}" for name, n in splits.items())
    print(f"-> {out} ({shown} rows; filter_stats.json, {DROPPED_FILE}, {HISTOGRAM_FILE}"
          + (f", {JUDGED_FILE}" if judge is not None else "") + (", parquet/" if cfg.parquet else "") + ")")
    if not outcome.kept:
        raise DataError(f"no trace passed the filters, so the dataset in {out} is empty: see the reasons above "
                        f"and in {out / STATS_FILE}, then loosen the thresholds in the recipe")
    if cfg.push_to_hub:
        push(out, cfg, record)
    return out


# ---------------------------------------------------------------- reading and checking
def verify_and_count(traces: Sequence[Trace], cfg: FilterConfig,
                     timing: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verdicts (golds settled first) and token counts on every trace; returns (verification, golds) reports."""
    verification: dict[str, Any] = {"verified": 0, "from_traces": sum(t.verdict is not None for t in traces)}
    golds: dict[str, Any] = {}
    if cfg.correctness:
        golds = settle_golds(traces, cfg)
        verification = fill_verdicts(traces, cfg.verify_settings(), reverify=cfg.reverify)
        timing["verify"] = verification.pop("seconds")
    if cfg.tokenizer:
        timing["tokenize"] = count_tokens(traces, cfg.tokenizer, trust_remote_code=cfg.trust_remote_code)
    else:
        for t in traces:
            t.num_tokens = t.completion_tokens
    return verification, golds


def settle_golds(traces: Sequence[Trace], cfg: FilterConfig) -> dict[str, Any]:
    """Rows without a gold: with ``--gold majority`` labelled by their problem's majority answer when enough
    samples agree; the rest get the verdict ``no_gold`` (dropped by correctness, counted and listed)."""
    labelled = majority_golds(traces, cfg.majority_min, cfg.verify_mode) if cfg.gold == "majority" else {}
    missing = []
    for t in traces:
        if t.tests is not None or t.gold is not None or (t.verdict is not None and not cfg.reverify):
            continue                     # a code trace is judged by its tests, not a gold answer
        if t.id in labelled:
            t.gold, t.gold_source = labelled[t.id], "majority"
        else:
            t.verdict = "no_gold"
            missing.append(t)
    problems = sorted({t.id for t in missing})
    if missing:
        print(f"filter: {len(problems):,} problem(s) ({len(missing):,} rows) have no gold answer"
              + (" and no clear majority" if cfg.gold == "majority" else "")
              + f"; dropped as no_gold: {_examples(missing)}")
    return {"source": cfg.gold, "majority_labelled": sorted(labelled), "without_gold": problems[:50],
            "without_gold_count": len(problems)}


def majority_golds(traces: Sequence[Trace], share: float, mode: str) -> dict[str, str]:
    """Problem id -> the final answer at least ``share`` of its samples give (problems without a gold only)."""
    answers: dict[str, list[str | None]] = {}
    for t in traces:
        if t.gold is None:
            answers.setdefault(t.id, []).append(extract_answer(t.answer, mode=mode) if t.closed else None)
    out = {}
    for pid, found in answers.items():
        counts = Counter(canonical_text(a) for a in found if a)
        if counts:
            top, n = counts.most_common(1)[0]
            if n / len(found) >= share:
                out[pid] = next(a for a in found if a and canonical_text(a) == top)
    return out


def format_hints(traces: Sequence[Trace], outcome: Outcome, cfg: FilterConfig) -> list[str]:
    """One line per reasoning format that rows dropped as unclosed actually use, naming the flag that reads it."""
    seen: Counter[str] = Counter()
    if cfg.reasoning_format == "auto":   # auto already reads every known format: an unclosed row is unfinished
        return []
    for t in traces:
        if outcome.drop_reason(t.index) == "completeness:no_think_close":
            found = detect_format(t.completion)
            if found and found != cfg.reasoning_format:
                seen[found] += 1
    return [f"filter: {n:,} row(s) dropped as no_think_close are written in the {fmt} format, which "
            f"--reasoning-format {cfg.reasoning_format} does not read: pass --reasoning-format {fmt} (or auto)"
            for fmt, n in seen.most_common()]




def read_traces(folders: Sequence[Path], cfg: FilterConfig, report: ReadReport) -> list[Trace]:
    """Every readable row of every folder, in order; bad lines go to ``report`` (with file and line)."""
    from tqdm import tqdm

    traces: list[Trace] = []
    with tqdm(desc="read", unit="trace", mininterval=1.0) as bar:
        for folder in folders:
            for row in iter_traces(folder, report):
                traces.append(prepare(row, index=len(traces), folder=str(folder), user_turn=cfg.user_turn,
                                      reasoning_format=cfg.reasoning_format, delimiters=cfg.delimiters()))
                bar.update(1)
    return traces


def _examples(traces: Sequence[Trace], limit: int = 8) -> str:
    ids = list(dict.fromkeys(t.id for t in traces))
    folders = sorted({t.folder for t in traces})
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return f"problem ids {', '.join(ids[:limit])}{more} in {', '.join(folders)}"


def check_inputs(traces: Sequence[Trace], cfg: FilterConfig) -> None:
    """Fail early, naming rows and the fix, when an enabled filter lacks what it needs."""
    no_user = [t for t in traces if t.user is None]
    if no_user:
        fix = ("pass --user-turn prompt to use each trace's own prompt" if cfg.user_turn == "chat"
               else "these rows have no prompt either; regenerate them")
        raise DataError(f"{len(no_user)} trace row(s) have no problem text for the user turn "
                        f"(field 'problem'): {_examples(no_user)}; {fix}")
    if cfg.correctness:
        no_gold = [t for t in traces if t.tests is None and t.gold is None and (cfg.reverify or t.verdict is None)]
        if no_gold and len(no_gold) == len(traces) and cfg.gold == "given":
            raise DataError(
                f"the correctness filter needs a gold answer, but {len(no_gold)} trace row(s) have none (field "
                f"'gold') and no verdict: {_examples(no_gold)}. Generate the traces from a problem set with answers, "
                "pass --gold majority to label them by the teacher's majority answer, or --no-correctness "
                "(recipe: 'correctness: false') to keep traces without checking them")
    if cfg.length and not cfg.tokenizer:
        unknown = [t for t in traces if t.completion_tokens is None]
        if unknown:
            raise DataError(f"the length filter needs token counts, but {len(unknown)} trace row(s) have no "
                            f"'completion_tokens': {_examples(unknown)}. Pass --tokenizer (the student's) to count "
                            "them, or --no-length")


def decontamination_report(cfg: FilterConfig, traces: Sequence[Trace], outcome: Outcome, index: NgramIndex | None,
                           eval_sets: Sequence[EvalSet]) -> dict[str, Any]:
    if not cfg.decontaminate or index is None:
        return {"on": False}
    hits: dict[str, str] = {}
    for t in traces:
        if t.id in hits or not any(f.startswith("decontamination:") for f in outcome.failures.get(t.index, [])):
            continue
        label = index.find(t.problem or t.user)
        if label is None and cfg.decontaminate_traces:
            label = index.find(t.reasoning)
        hits[t.id] = label or "?"
    return {"on": True, "ngram": cfg.ngram, "check_traces": cfg.decontaminate_traces,
            "sets": [{"source": s.source, "problems": s.problems} for s in eval_sets],
            "contaminated_problems": hits}


# ---------------------------------------------------------------- writing


def write_outputs(out: Path, cfg: FilterConfig, traces: Sequence[Trace], outcome: Outcome, stats: dict[str, Any],
                  record: RunRecord, timing: dict[str, float], start: float, *,
                  judge: Judge | None = None) -> dict[str, int]:
    """Build everything in ``<out>.partial`` and move it into place; returns rows per split."""
    from distill.plots import histogram

    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    outdir.mark(tmp, "filter")
    try:
        t0 = time.perf_counter()
        rows = [sft_dataset.example(t) for t in outcome.kept]
        splits = sft_dataset.split_by_problem(rows, cfg.validation_fraction, cfg.seed)
        ds = sft_dataset.to_datasets(splits)
        sft_dataset.save(ds, tmp, parquet=cfg.parquet)
        with (tmp / DROPPED_FILE).open("w", encoding="utf-8") as fh:
            for t in traces:
                failures = outcome.failures.get(t.index)
                if failures:
                    fh.write(json.dumps({"id": t.id, "sample": t.sample, "teacher": t.teacher, "folder": t.folder,
                                         "reason": failures[0], "failures": failures, **judge_columns(t)},
                                        ensure_ascii=False) + "\n")
        if judge is not None:
            write_judged(tmp, traces, outcome)
        lengths = [t.num_tokens if t.num_tokens is not None else len(t.assistant_text) for t in outcome.kept]
        unit = stats["token_count"] if all(t.num_tokens is not None for t in outcome.kept) else "characters"
        histogram(tmp / HISTOGRAM_FILE, lengths, title=f"kept traces: {len(lengths):,}", xlabel=unit)
        timing["write"] = time.perf_counter() - t0
        timing["total"] = time.perf_counter() - start
        stats["splits"] = {name: len(part) for name, part in splits.items()}
        stats["timing_s"] = {**{k: round(v, 3) for k, v in timing.items()},
                             **{f"filter.{k}": v for k, v in stats["timing_s"].items()}}
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        record.counts.update({
            "rows_in": stats["rows_in"], "rows_kept": stats["rows_kept"], "bad_lines": len(stats["bad_lines"]),
            "problems_in": stats["problems_in"], "problems_kept": stats["problems_kept"],
            "drops_first_by_filter": stats["drops_first_by_filter"], "splits": stats["splits"],
        })
        if judge is not None:
            record.counts["judge"] = {k: v for k, v in stats["judge"].items() if k != "settings"}
        record.write(tmp, status="complete" if outcome.kept else "empty")
        keep_cache(judge, out, tmp)     # after the last answer, just before the folder is replaced
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats["splits"]


def push(out: Path, cfg: FilterConfig, record: RunRecord) -> None:
    """Upload the saved dataset to ``cfg.push_to_hub`` (asked for explicitly; the token comes from HF_TOKEN)."""
    import datasets

    ds = datasets.load_from_disk(str(out))
    try:
        ds.push_to_hub(cfg.push_to_hub, private=cfg.hub_private)
    except Exception as exc:  # the hub client raises many types; all mean "not pushed"
        raise DistillError(f"could not push {out} to the hub repo {cfg.push_to_hub!r}: {exc}. The dataset is saved "
                           "locally; set HF_TOKEN (write access) and rerun, or push it later") from None
    record.extra["pushed_to"] = cfg.push_to_hub
    record.write(out)
    print(f"pushed to https://huggingface.co/datasets/{cfg.push_to_hub}")
