"""The SFT dataset: load it, check every row, tokenize it once with the student's template, and handle long rows.

Sources: the folder ``distill filter`` writes (``datasets.save_to_disk``, a Dataset or a DatasetDict with
``train``/``validation``), a local ``.jsonl``/``.json``/``.parquet`` file, or a hub dataset id. Rows need a
``messages`` column: ``[{"role": "user", ...}, {"role": "assistant", "content": "<think>...</think>..."}]``;
other columns (id, source, teacher, token counts) are kept for error messages and dropped before training.
The row's contract (columns, the ``messages`` shape, its validation, the folder reader) is
:mod:`distill.data.sft_rows`.

Tokenizing here rather than inside TRL gives three guarantees: a malformed row stops the run with its index and
id; the length of every example is known before training, so examples longer than ``max_length`` are dropped
(or refused) instead of silently cut; and the labels are built from the template's assistant mask, so only the
assistant turn (its ``<think>`` trace, answer and EOS) is trained.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.chat_template import THINK_CLOSE
from distill.data.jsonl import ReadReport, iter_jsonl
from distill.data.sft_rows import check_columns, message_problem, read_sft_folder, row_name
from distill.errors import DataError

log = logging.getLogger(__name__)

IGNORE = -100
# Columns a dataset may carry with a token count per row (used by --plan when no tokenizer is at hand).
TOKEN_COUNT_COLUMNS = ("num_tokens", "total_tokens", "tokens")


@dataclass
class SFTData:
    train: Any
    eval: Any | None
    source: str
    columns: list[str]
    splits: list[str] = field(default_factory=list)


@dataclass
class EncodeStats:
    examples: int = 0
    kept: int = 0
    overlong: int = 0
    truncated: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    without_think: int = 0
    max_tokens: int = 0
    share_rows: int = 0            # rows that were this rank's share to tokenize (the rest came from the others)
    lengths: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("lengths", "share_rows")}
        if self.lengths:
            s = sorted(self.lengths)
            out["length_p50"] = s[len(s) // 2]
            out["length_p95"] = s[min(len(s) - 1, int(0.95 * len(s)))]
        return out


# ---------------------------------------------------------------------------------------------- loading
def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).suffix.lower() in (".jsonl", ".json", ".parquet")


def load_sft_dataset(source: str, *, split: str = "train", eval_split: str = "") -> SFTData:
    """Load the training split (and the eval split when present); check the ``messages`` column."""
    import datasets

    path = Path(source).expanduser()
    train = evalset = None
    splits: list[str] = []
    if path.is_dir():
        train, evalset, splits = read_sft_folder(path, split=split, eval_split=eval_split)
    elif path.is_file():
        train = _read_file(path)
        splits = [split]
    elif _looks_like_path(source):
        raise DataError(f"dataset not found: {source} (pass the folder 'distill filter' wrote, a .jsonl/.parquet "
                        "file, or a hub dataset id)")
    else:
        try:
            loaded = datasets.load_dataset(source)
        except Exception as exc:  # noqa: BLE001 - the hub raises many types; the user needs the message
            raise DataError(f"could not load dataset {source!r} from the hub: {exc}") from None
        splits = list(loaded)
        if split not in loaded:
            raise DataError(f"hub dataset {source}: no split {split!r}; it has {', '.join(splits)}")
        train = loaded[split]
        evalset = loaded[eval_split] if eval_split and eval_split in loaded else None
    check_columns(train, source)
    if evalset is not None:
        check_columns(evalset, f"{source} [{eval_split}]")
    if len(train) == 0:
        raise DataError(f"{source}: the {split!r} split is empty")
    return SFTData(train=train, eval=evalset, source=source, columns=list(train.column_names), splits=splits)


def _read_file(path: Path) -> Any:
    """A .jsonl/.json/.parquet file as a Dataset; a file datasets cannot read is one error naming the bad line."""
    import datasets

    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet (or a "
                        "save_to_disk folder)")
    try:
        return datasets.Dataset.from_parquet(str(path)) if suffix == ".parquet" else \
            datasets.Dataset.from_json(str(path))
    except Exception as exc:  # datasets and pyarrow raise many types; say which line or what is wrong
        cause = exc.__cause__ or exc.__context__ or exc
        why = " ".join(str(cause).split())[:200] or type(cause).__name__
    if suffix == ".jsonl":
        report = ReadReport()
        for _ in iter_jsonl(path, report):
            pass
        if report.bad:
            more = f" (and {len(report.bad) - 1} more bad line(s))" if len(report.bad) > 1 else ""
            raise DataError(f"{report.bad[0]}{more}; fix or remove that line") from None
    kind = {"parquet": "a readable parquet file", "json": "a JSON list of rows", "jsonl": "JSON lines"}[suffix[1:]]
    raise DataError(f"{path}: not {kind} that datasets can load ({why}); check the file, or convert it to jsonl "
                    "with one {\"messages\": [...]} object per line") from None


# ------------------------------------------------------------------------------------------ tokenizing
def encode_example(example: dict[str, Any], index: int, *, tokenizer: Any, source: str,
                   assistant_only: bool, offset: int = 0) -> dict[str, Any]:
    """Tokenize one row with the chat template; labels are the ids on assistant tokens and -100 elsewhere.

    ``index`` counts from the start of the share being tokenized, ``offset`` is where that share starts: errors name
    the row of the whole dataset."""
    messages = example["messages"]
    problem = message_problem(messages)
    if problem:
        raise DataError(f"{source}: {row_name(example, index + offset)}: {problem}")
    enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=assistant_only)
    ids = list(enc["input_ids"])
    if assistant_only:
        mask = enc["assistant_masks"]
        if 1 not in mask:
            raise DataError(f"{source}: {row_name(example, index)}: the chat template marks no assistant tokens")
        labels = [t if m else IGNORE for t, m in zip(ids, mask)]
    else:
        labels = list(ids)
    think = any(THINK_CLOSE in m["content"] for m in messages if m["role"] == "assistant")
    return {"input_ids": ids, "labels": labels, "length": len(ids),
            "trained": sum(1 for x in labels if x != IGNORE), "has_think": think}


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, end)`` row ranges covering ``n`` rows, their sizes within one of each other.

    >>> shard_bounds(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    size, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


@dataclass
class Ranks:
    """The ranks that share the tokenizing: this one's index, how many, and a barrier (``wait``) they all reach."""

    rank: int = 0
    world: int = 1
    wait: Callable[[], None] | None = None


def tokenize_shared(ds: Any, tokenizer: Any, *, fingerprint: str, source: str, assistant_only: bool,
                    num_proc: int | None, cache_dir: Path | None, desc: str,
                    ranks: Ranks | None = None) -> tuple[Any, int]:
    """Every row tokenized, the work split over the ranks: ``(encoded rows, rows that were this rank's share)``.

    Each rank tokenizes its own contiguous share into ``cache_dir`` (with ``num_proc`` processes), waits at the
    barrier until every share is written, then reads the other shares from the cache; a share missing there (a
    cache on another node's local disk) is tokenized here instead. So no rank sits idle in a collective while another
    tokenizes the whole dataset (800k long traces take longer than a collective's timeout), and the wait is one
    share's time. Without a cache folder or a second rank, this rank tokenizes everything.
    """
    import datasets

    ranks = ranks or Ranks()
    wait = ranks.wait if cache_dir is not None and ranks.world > 1 else None
    bounds = shard_bounds(len(ds), ranks.world) if wait is not None else [(0, len(ds))]

    def encode(start: int, end: int) -> Any:
        name = fingerprint if len(bounds) == 1 else f"{fingerprint}-{start}-{end}"
        kwargs: dict[str, Any] = {}
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            kwargs["cache_file_name"] = str(cache_dir / f"encoded-{name}.arrow")
        part = ds if (start, end) == (0, len(ds)) else ds.select(range(start, end))
        return part.map(encode_example, with_indices=True, num_proc=num_proc, desc=desc, new_fingerprint=name,
                        fn_kwargs={"tokenizer": tokenizer, "source": source, "assistant_only": assistant_only,
                                   "offset": start},
                        remove_columns=[c for c in ds.column_names if c != "id"], **kwargs)

    if wait is None:
        return encode(0, len(ds)), len(ds)
    start, end = bounds[ranks.rank]
    mine = encode(start, end) if end > start else None
    log.info("rank %d of %d: tokenized its share, rows %d-%d (%d of %d), into %s", ranks.rank, ranks.world, start,
             end - 1, end - start, len(ds), cache_dir)
    wait()
    parts = [mine if i == ranks.rank else encode(a, b) for i, (a, b) in enumerate(bounds) if b > a]
    return datasets.concatenate_datasets(parts), end - start


def encode_dataset(ds: Any, tokenizer: Any, *, source: str, max_length: int, overlong: str, assistant_only: bool,
                   num_proc: int | None = None, cache_dir: Path | None = None,
                   desc: str = "tokenizing", ranks: Ranks | None = None) -> tuple[Any, EncodeStats]:
    """Tokenize every row (the work split over ``ranks``, :func:`tokenize_shared`), apply the overlong policy, and
    return (input_ids + labels dataset, stats)."""
    fingerprint = hashlib.sha256("|".join([
        getattr(ds, "_fingerprint", "") or "", tokenizer.chat_template or "", str(tokenizer.eos_token),
        str(tokenizer.pad_token), str(len(tokenizer)), str(assistant_only)]).encode()).hexdigest()[:16]
    encoded, here = tokenize_shared(ds, tokenizer, fingerprint=fingerprint, source=source,
                                    assistant_only=assistant_only, num_proc=num_proc, cache_dir=cache_dir, desc=desc,
                                    ranks=ranks)
    lengths = list(encoded["length"])
    trained = list(encoded["trained"])
    stats = EncodeStats(examples=len(lengths), lengths=lengths, max_tokens=max(lengths, default=0),
                        without_think=sum(1 for t in encoded["has_think"] if not t), share_rows=here)
    over = [i for i, n in enumerate(lengths) if n > max_length]
    stats.overlong = len(over)
    if over:
        ids = encoded["id"] if "id" in encoded.column_names else None
        shown = ", ".join(f"row {i}" + (f" (id {ids[i]!r})" if ids else "") + f": {lengths[i]} tokens"
                          for i in over[:5])
        more = f" and {len(over) - 5} more" if len(over) > 5 else ""
        if overlong == "error":
            raise DataError(f"{source}: {len(over)} example(s) longer than max_length {max_length}: {shown}{more}. "
                            "Raise max_length, filter them out (distill filter --max-tokens), or set overlong: drop")
        if overlong == "drop":
            log.warning("%s: dropping %d of %d examples longer than max_length %d (%s%s)", source, len(over),
                        len(lengths), max_length, shown, more)
            drop = set(over)
            encoded = encoded.select([i for i in range(len(lengths)) if i not in drop])
        else:
            stats.truncated = len(over)
            log.warning("%s: truncating %d examples to max_length %d: their ends (answer, EOS) are not trained "
                        "(%s%s)", source, len(over), max_length, shown, more)
    keep = [i for i in range(len(lengths)) if overlong != "drop" or lengths[i] <= max_length]
    stats.kept = len(keep)
    stats.tokens = sum(min(lengths[i], max_length) for i in keep)
    stats.trained_tokens = sum(trained[i] for i in keep)
    if stats.kept == 0:
        raise DataError(f"{source}: no example fits max_length {max_length} (longest {stats.max_tokens} tokens)")
    if stats.without_think:
        log.warning("%s: %d of %d assistant turns have no %s: is this the output of 'distill filter'?", source,
                    stats.without_think, stats.examples, THINK_CLOSE)
    encoded = encoded.select_columns(["input_ids", "labels"])
    return encoded, stats


# ---------------------------------------------------------------------------------------- length stats
def token_lengths(ds: Any, tokenizer: Any | None, *, sample: int = 2000, seed: int = 0) -> tuple[list[int], str]:
    """Per-example token counts for --plan: tokenized (a sample of ``sample`` rows), or from a count column.

    Returns (lengths, how) where ``how`` says which source was used, for the printout.
    """
    n = len(ds)
    if tokenizer is not None:
        rows = ds if n <= sample else ds.shuffle(seed=seed).select(range(sample))
        lengths = []
        for i, ex in enumerate(rows):
            problem = message_problem(ex["messages"])
            if problem:
                raise DataError(f"{row_name(ex, i)}: {problem}")
            lengths.append(len(tokenizer.apply_chat_template(ex["messages"], tokenize=True, return_dict=True)["input_ids"]))
        how = "tokenized" if n <= sample else f"tokenized a random sample of {sample} of {n} rows"
        return lengths, how
    for col in TOKEN_COUNT_COLUMNS:
        if col in ds.column_names:
            return [int(x) for x in ds[col]], f"column {col!r}"
    if "prompt_tokens" in ds.column_names and "completion_tokens" in ds.column_names:
        return ([int(a) + int(b) for a, b in zip(ds["prompt_tokens"], ds["completion_tokens"])],
                "columns prompt_tokens + completion_tokens (the teacher's tokenizer)")
    rows = ds if n <= sample else ds.shuffle(seed=seed).select(range(sample))
    lengths = [sum(len(m["content"]) for m in ex["messages"]) // 4 + 8 for ex in rows]
    return lengths, "estimated as characters / 4 (no tokenizer or token-count column)"
