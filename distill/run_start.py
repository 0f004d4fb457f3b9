"""Where a training stage (sft, grpo, opd) starts in its ``--out``: from scratch, from its last complete checkpoint,
or not at all because the folder already holds this finished run. One rule for all three:

- ``--overwrite`` empties the folder first, and only a folder the same command made (:func:`distill.outdir.prepare_out`;
  under ``accelerate launch`` the launching process does it, never the ranks);
- a folder holding another stage's output, or files of no run at all, is refused with the way out;
- a finished run of the same settings is done; of other settings it is refused, or with ``--resume`` (where the stage
  allows it) continued from its last checkpoint;
- checkpoints of the same settings are resumed from; of other settings only with ``--resume``;
- a checkpoint the Trainer had not finished writing (no ``trainer_state.json``, which it writes last: the run was
  killed while saving) is skipped, and the steps it stood for are trained again.

:func:`decide_on_main` makes the decision on the main process and hands it (or its error) to every rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill import outdir
from distill.errors import DistillError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """``done``: ``--out`` already holds this finished run; else ``checkpoint`` to resume from (None: from scratch)."""

    done: bool
    checkpoint: Path | None = None


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest ``checkpoint-N`` in ``folder`` holding ``trainer_state.json``; an unfinished one is skipped (with
    a warning), so a run killed while saving resumes from the checkpoint before it."""
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        suffix = path.name.rsplit("-", 1)[-1]
        if path.is_dir() and suffix.isdigit():
            if (path / "trainer_state.json").is_file():
                found.append((int(suffix), path))
            else:
                log.warning("%s is incomplete (interrupted while saving); it is skipped", path)
    return max(found)[1] if found else None


def decide_start(stage: str, out: Path, *, checkpoints: str, overwrite: bool, resume: bool,
                 same: Callable[[dict[str, Any]], bool], ours: Iterable[str], resume_finished: bool = True,
                 other_finished: Callable[[dict[str, Any]], str] | None = None) -> Start:
    """The start of ``distill <stage>`` in ``out`` (see the module docstring).

    ``same(run_json)``: whether the folder's run.json records these settings. ``ours``: the names a folder of this
    stage may hold before its run.json exists (beside ``checkpoints``). ``resume_finished``: whether ``--resume``
    may continue a finished run of other settings (a finished GRPO run given more steps). ``other_finished``: the
    refusal for a finished run of other settings (default: a generic one).
    """
    from distill.launch import started_by_relaunch
    from distill.runinfo import read_run

    if not started_by_relaunch():                   # only the launching process acts on --overwrite
        outdir.prepare_out(out, stage, overwrite=overwrite)
    previous = read_run(out)
    if previous is not None and previous.get("stage") != stage:
        raise DistillError(f"{out} holds the output of 'distill {previous.get('stage')}': choose another --out")
    is_same = previous is not None and same(previous)
    last = last_complete_checkpoint(out / checkpoints)
    if previous is not None and previous.get("status") == "complete":
        if is_same:
            print(f"{stage}: {out} already holds a finished run of this config; nothing to do (--overwrite to redo it)")
            return Start(True)
        if resume and resume_finished and last is not None:
            return Start(False, last)
        if other_finished is not None:
            raise DistillError(other_finished(previous))
        way = "pass --resume to continue it from its last checkpoint with these settings, " if resume_finished else ""
        raise DistillError(f"{out} holds a finished run with other settings: {way}pass --overwrite to start over, "
                           "or choose another --out")
    if last is not None:
        if resume or is_same:
            print(f"{stage}: resuming from {last.name}")
            return Start(False, last)
        raise DistillError(f"{out} holds checkpoints (last: {last.name}) of a run with other settings: pass --resume "
                           "to continue from it anyway, --overwrite to start over, or another --out")
    allowed = {checkpoints, outdir.MARKER, *ours}
    if previous is None and out.is_dir() and any(p.name not in allowed for p in out.iterdir()):
        raise DistillError(f"{out} exists and holds other files: choose another --out, or pass --overwrite")
    if resume:
        log.warning("--resume: no complete checkpoint in %s yet; starting from step 0", out / checkpoints)
    return Start(False)


def decide_on_main(decide: Callable[[], Start], *, process_index: int, world_size: int) -> Start:
    """``decide()`` on the main process; every rank returns its decision or raises its error (a rank never
    inspects the folder itself, so the ranks cannot disagree)."""
    decision: Any = None
    if process_index == 0:
        try:
            decision = decide()
        except DistillError as exc:
            decision = exc
    if world_size > 1:
        from accelerate.utils import broadcast_object_list

        decision = broadcast_object_list([decision])[0]
    if isinstance(decision, DistillError):
        raise decision
    return decision
