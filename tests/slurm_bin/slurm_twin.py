"""Shared code of the Slurm stand-ins in this folder (``sbatch``, ``srun``, ``scancel``, ``scontrol``).

See README.md here for what they emulate and what they do not. Standard library only: the stand-ins run with
whichever ``python3`` comes first on PATH.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
from pathlib import Path

NODE_PREFIX = "node"


# ------------------------------------------------------------------------------------------------ hostlists
def expand_hostlist(spec: str) -> list[str]:
    """Slurm's hostlist syntax: ``node[001-003,007],gpu1`` -> node001 node002 node003 node007 gpu1."""
    names: list[str] = []
    for item in _split_top(spec.strip()):
        if not item:
            continue
        names.extend(_expand_one(item))
    return names


def _split_top(spec: str) -> list[str]:
    """Split at commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in spec:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _expand_one(item: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", item)
    if not m:
        return [item]
    head, tail = item[:m.start()], item[m.end():]
    out = []
    for part in m.group(1).split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            width = len(lo)
            for n in range(int(lo), int(hi) + 1):
                out.extend(_expand_one(f"{head}{n:0{width}d}{tail}"))
        else:
            out.extend(_expand_one(f"{head}{part}{tail}"))
    return out


def node_names(count: int) -> list[str]:
    return [f"{NODE_PREFIX}{i:03d}" for i in range(1, count + 1)]


def compress_hostlist(names: list[str]) -> str:
    """The form Slurm puts in SLURM_JOB_NODELIST for names made by :func:`node_names`: node[001-004]."""
    if len(names) == 1:
        return names[0]
    nums = [int(n[len(NODE_PREFIX):]) for n in names]
    if nums == list(range(nums[0], nums[0] + len(nums))):
        return f"{NODE_PREFIX}[{nums[0]:03d}-{nums[-1]:03d}]"
    return f"{NODE_PREFIX}[{','.join(f'{n:03d}' for n in nums)}]"


# ------------------------------------------------------------------------------------------------ job state
def twin_dir() -> Path:
    """Where the stand-ins keep job state (ids, batch shells, steps): $SLURM_TWIN_DIR, else a per-user tmp dir."""
    d = Path(os.environ.get("SLURM_TWIN_DIR") or Path(tempfile.gettempdir()) / f"slurm-twin-{os.getuid()}")
    d.mkdir(parents=True, exist_ok=True)
    return d


def job_dir(job_id: str | int) -> Path:
    d = twin_dir() / "jobs" / str(job_id)
    d.mkdir(parents=True, exist_ok=True)
    return d


def next_id(counter: Path, start: int = 1000) -> int:
    """An id unique under ``counter`` (a file, locked while read and bumped)."""
    import fcntl

    counter.parent.mkdir(parents=True, exist_ok=True)
    with open(counter, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read().strip()
        value = int(text) + 1 if text else start
        fh.seek(0)
        fh.truncate()
        fh.write(str(value))
    return value


def step_tasks(job_id: str | int, step: str | None = None) -> list[int]:
    """The task processes (pids) of the job's running steps, as the srun stand-in registered them."""
    steps = job_dir(job_id) / "steps"
    out: list[int] = []
    if not steps.is_dir():
        return out
    for f in sorted(steps.iterdir()):
        if step is not None and f.name != step:
            continue
        out.extend(int(x) for x in f.read_text().split())
    return out


def process_tree(pid: int, stop: frozenset[int] = frozenset()) -> list[int]:
    """``pid`` and every process below it, not entering ``stop``. Slurm's proctrack (cgroup) finds every process a
    task started, also ones in a session of their own, as torchrun's workers are; the twin follows parent links
    in /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c in children.get(p, []) if c not in stop)
    return out


def signal_trees(pids: list[int], sig: int, stop: frozenset[int] = frozenset()) -> None:
    """Send ``sig`` to every process of each task (what slurmstepd's proctrack_g_signal does for a step)."""
    targets = dict.fromkeys(p for pid in pids for p in process_tree(pid, stop))
    for p in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def parse_signal(text: str) -> int:
    text = text.strip().upper()
    if text.isdigit():
        return int(text)
    return int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))


def default_signals_preexec() -> None:
    """In a task's child before exec: default dispositions, as slurmstepd starts a task (a background job of a
    non-interactive shell inherits SIGINT/SIGQUIT ignored; real tasks do not)."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)


def die_with_parent_preexec() -> None:
    """In a helper's child before exec: SIGKILL when the stand-in that started it dies (PR_SET_PDEATHSIG)."""
    import ctypes

    default_signals_preexec()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
