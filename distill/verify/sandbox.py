"""Run one untrusted program in a fresh process, in a fresh folder, under hard limits. Model output is data.

:func:`run_program` is the project's security boundary for code: a program written by a model runs only
here. Each call guarantees:

- a fresh temporary folder as cwd and ``HOME`` (and ``TMPDIR``), deleted afterwards;
- a minimal fixed environment (``PATH``, ``LANG``, ``HOME``, ``TMPDIR``); nothing is inherited, so no secret
  in the parent's environment reaches the program; the interpreter runs isolated (``-I -S``: no
  ``PYTHON*`` variables, no site-packages, no user site);
- as root: a dedicated unprivileged uid/gid per concurrent run (``DISTILL_SANDBOX_UID_BASE`` + slot, default
  1,900,000,000; no supplementary groups), so it cannot write the user's files, cannot signal the parent,
  and ``RLIMIT_NPROC`` (counted per uid) bounds exactly this run's processes; a run's uid is never shared
  with another run at the same time (slots are held as abstract unix sockets across processes);
- a private mount namespace where the kernel allows it: fresh tmpfs over ``/tmp``, ``/var/tmp``,
  ``/dev/shm`` and over folders the sandbox uid could not cross anyway (e.g. ``/root``), with only the
  sandbox folder and the interpreter bound back in;
- no network when ``unshare(CLONE_NEWNET)`` works (reported per run as ``ExecResult.network_isolated``);
- limits: CPU seconds (``RLIMIT_CPU``, rounded up to whole seconds: SIGXCPU, then SIGKILL a second later), wall seconds (every process of
  the run killed), address space (``RLIMIT_AS``), processes (``RLIMIT_NPROC``), file size
  (``RLIMIT_FSIZE``), open files (``RLIMIT_NOFILE``), no core dumps, and at most ``output_bytes`` read from
  each of stdout and stderr (the run is killed when either overflows, so the parent's memory stays bounded);
- when the main process ends (or is killed), every process the program left behind is killed, including
  ones that left the process group, and reaped.

As non-root the uid cannot change: the program then runs as the caller (it could write the caller's files
and signal the caller's processes), ``RLIMIT_NPROC`` is the caller's current task count plus ``nproc``,
network isolation needs unprivileged user namespaces, and leftovers outside the program's process group
survive. Run the sandbox as root (e.g. in a container) for the full guarantees; :func:`sandbox_info` says
what the current machine gives.
"""

from __future__ import annotations

import ast
import functools
import marshal
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distill.verify import _sandbox_boot as boot

EXEC_STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed")
_BOOT = str(Path(boot.__file__).resolve())
_UID_SLOTS = 256
_TMPFS_OPTIONS = "mode=1777,size=64m,nr_inodes=16384"
_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc")


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault): no run happened."""


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Defaults suit LeetCode/HumanEval-sized programs; every bound is enforced by the kernel
    (rlimits) or by the parent (wall clock, output bytes)."""

    cpu_s: float = 10.0
    wall_s: float = 15.0
    memory_bytes: int = 1 << 30
    nproc: int = 32
    fsize_bytes: int = 10 << 20
    output_bytes: int = 1 << 20
    nofile: int = 256

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class ExecResult:
    """What one run did. ``status``: ok (exit 0), error (non-zero exit), timeout (wall or CPU limit), memory
    (allocation failed under the address-space limit), output_limit, killed (ended by another signal)."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    cpu_s: float = 0.0
    network_isolated: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _uid_base() -> int:
    return int(os.environ.get("DISTILL_SANDBOX_UID_BASE", "1900000000"))


@contextmanager
def _uid_slot() -> Iterator[int | None]:
    """A sandbox uid no other run (in any process) is using, held until exit; None when not root."""
    if os.geteuid() != 0:
        yield None
        return
    base = _uid_base()
    for slot in range(_UID_SLOTS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0distill-sandbox-uid-{base + slot}")
        except OSError:
            sock.close()
            continue
        try:
            boot.sweep_uid(base + slot)  # leftovers of a caller that died mid-run
            yield base + slot
        finally:
            sock.close()
        return
    raise SandboxError(f"all {_UID_SLOTS} sandbox uid slots are busy")


def _user_tasks(uid: int) -> int:
    """How many tasks (threads) ``uid`` runs now: what RLIMIT_NPROC counts against a non-root caller."""
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with suppress(OSError), open(f"/proc/{name}/status", "rb") as f:
                text = f.read().decode("ascii", "replace")
                fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
                if int(fields.get("Uid", "-1 ").split()[0]) == uid:
                    total += int(fields.get("Threads", "1").strip())
    return total


def _interpreter(python: str | None) -> tuple[str, list[str]]:
    """The real interpreter path and the folder trees it needs (its prefix, and ours if it is ours)."""
    real = os.path.realpath(python or sys.executable)
    roots = {os.path.dirname(os.path.dirname(real))}
    if python is None:
        roots.add(os.path.realpath(sys.base_prefix))
    return real, sorted(roots)


def _blocking_ancestor(path: str) -> str | None:
    """The topmost ancestor folder of ``path`` that others cannot cross (no o+x), or None."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        folder = str(Path(*parts[:i]))
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def _mount_plan(workdir: str, roots: list[str]) -> list[dict]:
    """tmpfs mounts for the boot process: world-writable scratch folders (private per run) and folders that
    hide the interpreter from the sandbox uid (``required``), each with the paths to bind back in."""
    entries: dict[str, dict] = {}
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        real = os.path.realpath(folder)
        with suppress(OSError):
            if stat.S_ISDIR(os.stat(real).st_mode) and os.stat(real).st_mode & stat.S_IWOTH:
                entries.setdefault(real, {"at": real, "options": _TMPFS_OPTIONS, "expose": []})
    for root in roots:
        blocker = _blocking_ancestor(root)
        if blocker is not None:
            entry = entries.setdefault(blocker, {"at": blocker, "options": "mode=755,size=1m", "expose": []})
            entry["required"] = True
    tops = [e for e in entries.values() if not any(e["at"].startswith(o["at"] + "/") for o in entries.values())]
    for path, readonly in [(workdir, False)] + [(r, True) for r in roots]:
        for entry in tops:
            if path.startswith(entry["at"] + "/"):
                entry["expose"].append([path, readonly])
    return tops


def _environment(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}


def _prepare(workdir: str, source: str, stdin: str | None, uid: int | None) -> None:
    Path(workdir, "main.py").write_text(source, encoding="utf-8")
    if stdin is not None:
        Path(workdir, "input.txt").write_text(stdin, encoding="utf-8")
    for name in os.listdir(workdir):
        os.chmod(os.path.join(workdir, name), 0o644)
    if uid is not None:
        os.chown(workdir, uid, uid)
    os.chmod(workdir, 0o700)


class _Run:
    """The parent's side of one run: pipes, clock, output caps, killing."""

    def __init__(self, proc: subprocess.Popen, status_r: int, limits: Limits, uid: int | None):
        self.proc, self.status_r, self.limits, self.uid = proc, status_r, limits, uid
        self.out = {"stdout": bytearray(), "stderr": bytearray()}
        self.status_buf = bytearray()
        self.timed_out = self.overflow = False
        self.child_pid: int | None = None

    def kill(self) -> None:
        """Kill every process of the program (not the boot process, so it can still report)."""
        if self.uid is not None:
            boot.sweep_uid(self.uid)
        elif self.child_pid is not None:
            with suppress(OSError):
                os.killpg(self.child_pid, signal.SIGKILL)

    def _on_status(self, data: bytes) -> None:
        self.status_buf += data
        if self.child_pid is None:
            for event in self.events():
                if event.get("event") == "started":
                    self.child_pid = event["pid"]

    def pump(self, start: float) -> None:
        """Read until every pipe closes; kill on wall timeout or output overflow (then drain briefly)."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
        sel.register(self.status_r, selectors.EVENT_READ, "status")
        deadline = start + self.limits.wall_s
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                if self.timed_out or self.overflow:
                    break  # something still holds a pipe after the kill: stop reading
                self.timed_out = True
                self.kill()
                deadline = now + 2.0
            for key, _ in sel.select(timeout=max(0.0, min(deadline - now, 0.5))):
                fd = key.fileobj if isinstance(key.fileobj, int) else key.fileobj.fileno()
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                elif key.data == "status":
                    self._on_status(data)
                else:
                    buf = self.out[key.data]
                    room = self.limits.output_bytes - len(buf)
                    buf += data[: max(room, 0)]
                    if len(data) > room and not self.overflow and not self.timed_out:
                        self.overflow = True
                        self.kill()
                        deadline = time.monotonic() + 2.0
        sel.close()

    def events(self) -> list[dict]:
        lines = bytes(self.status_buf).decode("utf-8", "replace").splitlines()
        return [ast.literal_eval(line) for line in lines if line.strip().startswith("{")]


def _classify(run: _Run, exit_event: dict | None, stderr: str, limits: Limits) -> tuple[str, int | None]:
    if run.overflow:
        return "output_limit", None if exit_event is None else exit_event["returncode"]
    if run.timed_out:
        return "timeout", None if exit_event is None else exit_event["returncode"]
    if exit_event is None:
        return "killed", None
    rc, cpu = exit_event["returncode"], exit_event["cpu_s"]
    if rc == 0:
        return "ok", rc
    if rc in (-signal.SIGXCPU, -signal.SIGKILL) and cpu >= int(-(-limits.cpu_s // 1)) - 0.05:
        return "timeout", rc
    tail = "\n".join(stderr.strip().splitlines()[-5:])
    if any(hint in tail for hint in _MEMORY_HINTS):
        return "memory", rc
    return ("killed" if rc < 0 else "error"), rc


def run_program(source: str, stdin: str | None = None, limits: Limits | None = None, *,
                python: str | None = None) -> ExecResult:
    """Run Python ``source`` (as ``main.py``) with ``stdin`` as its standard input, under ``limits``.

    Returns within about ``limits.wall_s`` + 2 s (+ the time to delete what the program wrote), whatever the
    program does. Raises :class:`SandboxError` only when the sandbox could not be set up.
    """
    limits = limits or Limits()
    real_python, roots = _interpreter(python)
    with _uid_slot() as uid:
        workdir = os.path.realpath(tempfile.mkdtemp(prefix="distill-sbx-"))
        try:
            return _run_in(workdir, source, stdin, limits, uid, real_python, roots)
        finally:
            _remove(workdir)


def _remove(workdir: str) -> None:
    """Delete the sandbox folder, even where the program took away permissions (matters when not root)."""
    shutil.rmtree(workdir, ignore_errors=True)
    if os.path.lexists(workdir):
        for folder, dirs, _ in os.walk(workdir):
            for name in dirs:
                with suppress(OSError):
                    os.chmod(os.path.join(folder, name), 0o700, follow_symlinks=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _run_in(workdir: str, source: str, stdin: str | None, limits: Limits, uid: int | None,
            real_python: str, roots: list[str]) -> ExecResult:
    _prepare(workdir, source, stdin, uid)
    env = _environment(workdir)
    lim = asdict(limits)
    if uid is None:
        lim["nproc"] = _user_tasks(os.getuid()) + limits.nproc
    status_r, status_w = os.pipe()
    cfg = {"root": uid is not None, "uid": uid, "gid": uid, "limits": lim, "env": env, "cwd": workdir,
           "status_fd": status_w, "mounts": _mount_plan(workdir, roots) if uid is not None else [],
           "argv": [real_python, "-I", "-S", "main.py"]}
    stdin_file = open(os.path.join(workdir, "input.txt"), "rb") if stdin is not None else None  # noqa: SIM115
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [real_python, "-I", "-S", _BOOT, marshal.dumps(cfg, 2).hex()], stdin=stdin_file or subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, env=env, start_new_session=True,
            pass_fds=(status_w,))
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
        if stdin_file is not None:
            stdin_file.close()
    run = _Run(proc, status_r, limits, uid)
    try:
        run.pump(start)
        try:
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            with suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        run.kill()  # belt and braces: nothing of the run survives it
    finally:
        for f in (proc.stdout, proc.stderr):
            f.close()
        os.close(status_r)
    seconds = time.monotonic() - start
    events = run.events()
    errors = [e for e in events if e.get("event") == "error"]
    if errors:
        raise SandboxError(f"sandbox setup failed ({errors[0].get('where')}): {errors[0].get('msg')}")
    started = next((e for e in events if e.get("event") == "started"), None)
    if started is None:
        raise SandboxError(f"the sandbox's boot process did not start the program: {run.out['stderr'][-2000:]!r}")
    exit_event = next((e for e in events if e.get("event") == "exit"), None)
    stdout = run.out["stdout"].decode("utf-8", "replace")
    stderr = run.out["stderr"].decode("utf-8", "replace")
    status, rc = _classify(run, exit_event, stderr, limits)
    return ExecResult(status, rc, stdout, stderr, seconds, cpu_s=(exit_event or {}).get("cpu_s", 0.0),
                      network_isolated=bool(started.get("network_isolated")),
                      extra={"private_mounts": bool(started.get("private_mounts")), "uid": uid})


@functools.lru_cache(maxsize=1)
def sandbox_info() -> dict:
    """What this machine's sandbox gives (probed once by running a tiny program): ``user_separated`` (a
    dedicated uid per run: needs root), ``network_isolated``, ``private_mounts``."""
    result = run_program("print('ok')", limits=Limits(wall_s=30.0))
    if result.status != "ok":
        raise SandboxError(f"the sandbox cannot run a trivial program: {result}")
    return {"user_separated": os.geteuid() == 0, "network_isolated": result.network_isolated,
            "private_mounts": bool(result.extra.get("private_mounts"))}
