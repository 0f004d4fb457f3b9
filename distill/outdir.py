"""Output folders: a folder is only ever deleted if ``distill`` made it, for the same command.

Every command that writes an output folder leaves a marker file in it (``.distill-output.json``: the command
that made it). ``--overwrite`` (and the pipeline's clearing of a stale step) deletes a folder only when:

- the folder holds that marker, written by the same command;
- it is not the current folder, a parent of it, the home folder, or the filesystem root.

Anything else is refused with one line that names the folder and the way out, and nothing is deleted.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> out = prepare_out(root / "run", "filter", overwrite=False)
>>> made_by(out)
'filter'
>>> (out / "data.jsonl").write_text("x")
1
>>> _ = prepare_out(out, "filter", overwrite=True)   # ours: cleared and marked again
>>> sorted(p.name for p in out.iterdir())
['.distill-output.json']
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from distill.errors import DistillError

MARKER = ".distill-output.json"


def mark(out: str | Path, command: str) -> None:
    """Record in ``out`` that ``distill COMMAND`` made it (kept when already there)."""
    path = Path(out) / MARKER
    if made_by(out) == command:
        return
    path.write_text(json.dumps({"command": command, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n",
                    encoding="utf-8")


def made_by(out: str | Path) -> str | None:
    """The command that made ``out``, from its marker; ``None`` when there is no readable marker."""
    path = Path(out) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if isinstance(command, str) else None


def is_empty(out: str | Path) -> bool:
    path = Path(out)
    return not path.exists() or (path.is_dir() and not any(p.name != MARKER for p in path.iterdir()))


def _protected(target: Path) -> str | None:
    """Why ``target`` may never be deleted, or ``None``."""
    cwd = Path.cwd().resolve()
    home = Path(os.path.expanduser("~")).resolve()
    if target == Path(target.anchor):
        return "it is the filesystem root"
    if target == cwd:
        return "it is the current folder"
    if target in cwd.parents:
        return "it is a parent of the current folder"
    if target == home or target in home.parents:
        return "it is the home folder or above it"
    return None


def check_deletable(out: str | Path, command: str) -> Path:
    """Raise :class:`DistillError` unless ``distill COMMAND`` may delete ``out``; return its resolved path."""
    path = Path(out)
    target = path.resolve()
    why = _protected(target)
    if why:
        raise DistillError(f"--out {path}: refusing to delete it ({why}); choose a new folder for --out")
    if target.exists() and not target.is_dir():
        raise DistillError(f"--out {path} is a file, not a folder; choose another --out")
    maker = made_by(target)
    if maker is None:
        raise DistillError(f"--out {path} was not made by distill (no {MARKER} in it), so --overwrite will not "
                           "delete it; delete it yourself if you mean to, or choose another --out")
    if maker != command:
        raise DistillError(f"--out {path} holds the output of 'distill {maker}', not 'distill {command}'; "
                           "--overwrite will not replace it: choose another --out")
    return target


def clear(out: str | Path, command: str) -> Path:
    """Delete ``out`` after :func:`check_deletable`, then recreate it empty with its marker."""
    target = check_deletable(out, command)
    shutil.rmtree(target)
    target.mkdir(parents=True)
    mark(target, command)
    return Path(out)


def check_writable(out: str | Path) -> None:
    """Raise :class:`DistillError` now when ``out`` could not be created or written, without creating it
    (for commands that build their output elsewhere and move it into place at the end)."""
    path = Path(out).absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise DistillError(f"--out {out}: {probe} is a file, not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DistillError(f"--out {out}: {probe} is not writable; choose a writable folder")
    try:   # os.access says yes to root everywhere; /proc, a read-only mount or a full disk still refuse
        os.rmdir(tempfile.mkdtemp(prefix=".distill-probe-", dir=probe))
    except OSError as exc:
        raise DistillError(f"--out {out}: cannot write in {probe} ({exc.strerror or exc}); choose a writable "
                           "folder") from None


def check_ours(out: str | Path, command: str) -> None:
    """Raise :class:`DistillError` unless ``out`` is missing or empty, or was made by ``distill COMMAND`` (its
    marker, or, from before markers, a ``run.json`` of that stage).

    For commands that write fixed file names straight into ``out`` (``results.json``, ``train.jsonl`` ...): in a
    folder someone else filled they would replace that person's files of the same names.
    """
    path = Path(out)
    if is_empty(path) or not path.is_dir():
        return
    maker = made_by(path)
    if maker == command:
        return
    if maker is not None:
        raise DistillError(f"--out {path} holds the output of 'distill {maker}', not 'distill {command}': "
                           "choose another --out")
    try:
        stage = json.loads((path / "run.json").read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        stage = None
    if stage != command:
        raise DistillError(f"--out {path} already holds files distill did not write (no {MARKER} in it), and "
                           f"'distill {command}' would replace those with the names it writes: choose a new or "
                           "empty folder for --out")


def prepare_out(out: str | Path, command: str, *, overwrite: bool) -> Path:
    """Make ``out`` ready for ``distill COMMAND``: created and marked; with ``overwrite`` cleared first.

    Without ``overwrite`` an existing folder is kept as it is (the command decides whether its content lets it
    resume); it is refused when it holds another command's output. A folder that already holds files but no
    marker (made by hand, or by an older distill) is used but not marked, so ``--overwrite`` never deletes it
    later. Errors name the folder and the fix.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise DistillError(f"--out {path} is a file, not a folder; choose another --out")
    if overwrite and path.exists() and not is_empty(path):
        return clear(path, command)
    maker = made_by(path)
    if maker is not None and maker != command:
        raise DistillError(f"--out {path} holds the output of 'distill {maker}', not 'distill {command}': "
                           "choose another --out")
    try:
        fresh = is_empty(path)
        path.mkdir(parents=True, exist_ok=True)
        if fresh or maker == command:
            mark(path, command)
    except OSError as exc:
        raise DistillError(f"--out {path}: cannot write there ({exc.strerror or exc}); choose a writable folder") \
            from None
    return path
