"""A traces folder's shard bookkeeping: shard names, what a shard already holds, one writer per shard, and the
folder's settings check. The rows themselves are written by :class:`distill.data.jsonl.ShardWriter`.

A traces folder (``distill generate --out``) holds::

    shard-IIIII-of-NNNNN.jsonl   the rows of shard I of N (``distill.data.traces``), appended, fsync'd
    generate-settings.json       the settings that define the traces; a rerun with others is refused
    .shard-IIIII-of-NNNNN.jsonl.lock   the ``flock`` of the process writing that shard
    run.json                     (one shard) or runs/shard-IIIII-of-NNNNN/run.json (several): the run records

>>> shard_name(3, 16)
'shard-00003-of-00016.jsonl'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DataError, DistillError
from distill.outdir import MARKER, made_by, mark, prepare_out
from distill.runinfo import RUN_FILE, read_run

log = logging.getLogger(__name__)

SHARD_GLOB = "shard-*.jsonl"
SETTINGS_FILE = "generate-settings.json"


# ---------------------------------------------------------------------------------------------- names
def shard_name(shard_index: int, num_shards: int, suffix: str = "jsonl") -> str:
    return f"shard-{shard_index:05d}-of-{num_shards:05d}.{suffix}"


def shard_files(folder: str | Path) -> list[Path]:
    """The shard files of a traces folder, sorted (``shard-*.jsonl``, and ``*.parquet`` exports)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"traces folder not found: {folder}")
    return sorted(list(folder.glob(SHARD_GLOB)) + list(folder.glob("*.parquet")))


# ---------------------------------------------------------------------------------------------- resume
_KEY_RE = re.compile(rb'^\{"id": ("(?:[^"\\]|\\.)*"), "sample": (\d+),')


def scan_done(path: Path) -> tuple[dict[str, set[int]], dict[str, Any] | None]:
    """The (id -> samples) already written in a shard file, and its first row (for the settings check).

    Streams the file line by line and reads only each row's leading ``id`` and ``sample`` (rows are written
    with those keys first), so resuming a multi-GB shard stays fast. Lines that do not parse are skipped
    with a warning; a last line without its newline (a write cut by a crash) does not count.
    """
    done: dict[str, set[int]] = {}
    first: dict[str, Any] | None = None
    if not path.exists():
        return done, first
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                log.warning("%s:%d: partial last line ignored (an interrupted write)", path, lineno)
                break
            if first is None:
                with contextlib.suppress(ValueError):
                    first = json.loads(line)
            m = _KEY_RE.match(line)
            if m and line.rstrip().endswith(b"}"):
                key, sample = json.loads(m.group(1)), int(m.group(2))
            else:
                try:
                    row = json.loads(line)
                    key, sample = str(row["id"]), int(row["sample"])
                except (ValueError, KeyError, TypeError):
                    if line.strip():
                        log.warning("%s:%d: not a trace row; skipped (it will be regenerated)", path, lineno)
                    continue
            done.setdefault(key, set()).add(sample)
    return done, first


# ---------------------------------------------------------------------------------------------- one writer
@contextlib.contextmanager
def shard_lock(out: Path, shard_file: str) -> Iterator[None]:
    """One writer per shard: a second job on the same shard (a requeue racing a manual rerun) is refused.

    The lock (``flock`` on ``OUT/.SHARD.lock``) dies with its process, so a killed run never leaves it held.
    """
    import fcntl
    import platform

    path = out / f".{shard_file}.lock"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+")
    except OSError as exc:
        raise DistillError(f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder") \
            from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise DistillError(f"{out / shard_file} is being written by {holder}; wait for it to finish or stop "
                               "it (two writers would duplicate work)") from None
        except OSError as exc:  # a file system without flock: go on unguarded
            log.warning("cannot lock %s (%s): make sure no other job writes this shard", path, exc)
        else:
            fh.seek(0)
            fh.truncate()
            fh.write(f"distill generate pid {os.getpid()} on {platform.node()}\n")
            fh.flush()
        yield
    finally:
        fh.close()


# ---------------------------------------------------------------------------------------------- the folder
def prepare_folder(out: Path, shard_path: Path, record_dir: Path, settings: dict[str, Any], *, overwrite: bool,
                   num_shards: int) -> None:
    """Refuse to mix settings in one folder; with ``overwrite`` clear this run's files first.

    With one shard ``overwrite`` clears the whole folder's shards, run record and settings; with several, only
    this shard and its run record (the other shards may be written by other jobs), and only when the other
    shards' settings are this run's: a refused run deletes nothing. Then the folder's ``generate-settings.json``
    must equal ``settings`` (written when there is none). A ``run.json`` that is not a ``distill generate`` record
    (someone else's file) is never replaced, and ``--overwrite`` deletes files only in a folder that
    ``distill generate`` made.
    """
    record = record_dir / RUN_FILE
    for folder in dict.fromkeys((out, record_dir)):
        other = read_run(folder)
        if (folder / RUN_FILE).exists() and (other is None or other.get("stage") != "generate"):
            what = f"the output of 'distill {other.get('stage')}'" if other and other.get("stage") else \
                f"a {RUN_FILE} that is not a 'distill generate' record"
            raise DistillError(f"{folder} holds {what}, not traces; pick another --out")
    settings_path = out / SETTINGS_FILE
    if overwrite:
        victims = [*out.glob(SHARD_GLOB), record, settings_path] if num_shards == 1 else [shard_path, record]
        victims = [p for p in victims if p.is_file()]
        if victims and not _made_by_generate(out):
            raise DistillError(f"--out {out} was not made by 'distill generate' (no {MARKER} in it), so --overwrite "
                               f"will not delete {victims[0].name} there; delete it yourself if you mean to, or "
                               "choose another --out")
        others_hold_rows = num_shards > 1 and _holds_rows(out, besides=shard_path)
        if others_hold_rows and settings_path.is_file():
            # The other shards keep their rows: one shard's --overwrite cannot change the folder's settings.
            check_settings(out, settings_path, settings, other_shards=True)
        for path in victims:
            log.info("--overwrite: removing %s", path)
            path.unlink()
        if others_hold_rows and settings_path.is_file():
            return
    elif settings_path.is_file() and _holds_rows(out):
        check_settings(out, settings_path, settings)
        return
    elif any(out.glob(SHARD_GLOB)):
        raise DistillError(f"{out} holds trace shards but no {SETTINGS_FILE}, so they cannot be checked against "
                           "this run's settings; pick another --out or pass --overwrite")
    fresh = _only_bookkeeping(out)
    prepare_out(out, "generate", overwrite=False)      # created, and marked as traces when new
    if fresh:
        mark(out, "generate")                           # new, though the shard lock was made in it first
    tmp = out / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, settings_path)


def _made_by_generate(out: Path) -> bool:
    """Whether ``distill generate`` made ``out``: its marker, or (a folder from before markers) its settings file."""
    return made_by(out) == "generate" or (made_by(out) is None and (out / SETTINGS_FILE).is_file())


def _only_bookkeeping(out: Path) -> bool:
    """Whether ``out`` is missing or holds nothing but distill's marker and shard locks (a folder just made)."""
    if not out.is_dir():
        return not out.exists()
    return all(p.name == MARKER or (p.name.startswith(".shard-") and p.name.endswith(".lock")) for p in out.iterdir())


def _holds_rows(out: Path, besides: Path | None = None) -> bool:
    """Whether any shard of ``out`` (but ``besides``) holds a row: settings left by a run that wrote none bind
    nothing."""
    return any(p.is_file() and p.stat().st_size > 0 and p != besides for p in out.glob(SHARD_GLOB))


def _other_limit(stored: Any, now: Any) -> bool:
    """Whether two ``problems_sha`` values (``LIMIT:DIGEST``) were taken over different --limit's."""
    return isinstance(stored, str) and isinstance(now, str) and stored.split(":")[0] != now.split(":")[0]


def check_settings(out: Path, settings_path: Path, settings: dict[str, Any], *, other_shards: bool = False) -> None:
    """The folder's stored settings must equal this run's (a resume), else the run is refused."""
    try:
        stored = json.loads(settings_path.read_text())
    except (OSError, ValueError) as exc:
        raise DistillError(f"{settings_path}: unreadable ({exc}); delete it or pass --overwrite") from None
    diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if _other_limit(stored.get("problems_sha"), settings.get("problems_sha")):
        diff.pop("problems_sha", None)     # another --limit reads another set of problems: not a change of data
    if "problems_sha" in diff and stored.get("problems_sha") is not None:
        raise DistillError(f"{out}: the problems in {settings.get('dataset')} changed since these traces were "
                           "written (their texts or gold answers differ), so the traces' verdicts would be stale; "
                           "write the new problems to another --out, or pass --overwrite to discard these traces")
    if diff:
        lines = "; ".join(f"{k}: {old!r} in the folder, {new!r} now" for k, (old, new) in diff.items())
        if other_shards:
            raise DistillError(f"{out}: the other shards hold traces made with other settings ({lines}); "
                               "--overwrite of one shard cannot change them. To start over with new settings, run once "
                               "without --num-shards and with --overwrite (it clears every shard), or pick another --out.")
        raise DistillError(f"{out} holds traces made with other settings ({lines}). Rerun with the folder's "
                           "settings to resume, pick another --out, or pass --overwrite to discard them.")
