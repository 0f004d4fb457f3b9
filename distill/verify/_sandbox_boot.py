"""The sandbox's first process: isolate, limit, drop privileges, run the program, reap and report. Trusted code.

:mod:`distill.verify.sandbox` starts this file as ``python -I -S _sandbox_boot.py CONFIG`` (the config
``marshal``-ed, version 2, as hex) in a new session, with the minimal environment, the sandbox folder as cwd
and the status pipe as an extra descriptor. It imports only the standard library (it runs without
site-packages) and guarantees, in this order:

1. new network and mount namespaces where the kernel lets us (``unshare``); as non-root a user namespace is
   tried for the network one; what worked is reported, never assumed;
2. in the mount namespace: ``/`` made private (nothing propagates back), fresh size-limited tmpfs over the
   world-writable folders (``/tmp``, ``/var/tmp``, ``/dev/shm``) and over folders the sandbox user cannot cross
   (``/root`` when the interpreter lives there), with only the planned paths (the sandbox folder, the
   interpreter's prefix) bound back in;
3. it becomes a child subreaper, forks the program's process, which sets the rlimits, drops to the sandbox
   uid/gid with no supplementary groups (when root), asks for SIGKILL if this process dies, and execs the
   interpreter on the program; the status descriptor is close-on-exec, so the program never holds it;
4. when the program's main process ends, every other process it left is killed (all processes of the sandbox
   uid, found in ``/proc`` and signalled through pidfds, so a recycled pid is never hit; as non-root: its
   process group), the orphans are reaped, and one line reports exit status and CPU seconds.

Events are written as one Python dict literal per line (``repr``; the caller reads them with
``ast.literal_eval``). Setup failures are reported as ``{'event': 'error'}`` and exit 125/126: the caller
raises, since they are not the program's fault. Imports are kept to builtins and ``ctypes`` (no ``json``,
``re``, ``enum``): this process starts once per run.
"""

from __future__ import annotations

import marshal
import os
import resource
import sys
import time

try:
    import _signal as signal  # the C module: `signal` would import enum, which costs more than the rest here
except ImportError:  # pragma: no cover - other interpreters
    import signal  # type: ignore[no-redef]

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36

_LIBC = None


def _libc():
    """libc through ctypes (for unshare, mount and prctl), loaded on first use."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(ret: int, what: str) -> None:
    if ret != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> bool:
    if hasattr(os, "unshare"):  # Python 3.12+
        try:
            os.unshare(flags)
            return True
        except OSError:
            return False
    return _libc().unshare(flags) == 0


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(_libc().mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {source} on {target}")


def isolate(root: bool) -> tuple[bool, bool]:
    """Enter new network (and, as root, mount) namespaces; returns (network isolated, mount namespace)."""
    if not root:
        uid, gid = os.getuid(), os.getgid()
        if not _unshare(CLONE_NEWUSER | CLONE_NEWNET):
            return False, False
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        return True, False
    return _unshare(CLONE_NEWNET), _unshare(CLONE_NEWNS)


def setup_mounts(plan: list[dict], cwd: str) -> None:
    """Carry out the parent's mount plan: tmpfs over each ``at``, with the ``expose`` paths bound back in."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for entry in plan for path, _ in entry["expose"]}
    for entry in sorted(plan, key=lambda e: e["at"].count("/")):
        _mount("tmpfs", entry["at"], "tmpfs", MS_NOSUID | MS_NODEV, entry["options"])
        for path, readonly in entry["expose"]:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND | MS_REC, None)
            if readonly:
                try:  # noqa: SIM105 - contextlib costs start-up time here
                    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
                except OSError:
                    pass  # read-only is a bonus: the sandbox uid cannot write root's files anyway
    for fd in fds.values():
        os.close(fd)
    os.chdir(cwd)


def _proc_ids(pid: str) -> tuple[set[int], bool] | None:
    """The real/effective/saved uids of a process and whether it is a zombie; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    uids: set[int] = set()
    zombie = False
    for line in text.splitlines():
        if line.startswith("Uid:"):
            uids = {int(x) for x in line.split()[1:4]}
        elif line.startswith("State:"):
            zombie = line.split()[1] in ("Z", "X")
    return uids, zombie


def uid_pids(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real, effective or saved uid is ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            ids = _proc_ids(name)
            if ids is not None and uid in ids[0] and not ids[1]:
                found.append(int(name))
    return found


def sweep_uid(uid: int, rounds: int = 500) -> int:
    """SIGKILL every process of ``uid`` until none is left (or ``rounds`` scans); returns how many were hit.

    Each target is opened as a pidfd and its uid checked again through that pidfd's ``/proc`` entry before the
    signal, so a pid recycled by another user's process is never signalled. Never call with a uid in use by
    anything but the sandbox.
    """
    if uid == 0:
        raise ValueError("refusing to sweep uid 0")
    hit = 0
    for attempt in range(rounds):
        pids = uid_pids(uid)
        if not pids:
            return hit
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                ids = _proc_ids(str(pid))
                if ids is not None and uid in ids[0]:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    hit += 1
            except OSError:
                pass
            finally:
                os.close(fd)
        time.sleep(min(0.001 * (attempt + 1), 0.02))
    return hit


def _set_limits(limits: dict) -> None:
    cpu = max(1, int(-(-limits["cpu_s"] // 1)))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child(cfg: dict, status_fd: int) -> None:
    """In the forked child: limits, privilege drop, exec. Never returns."""
    try:
        os.set_inheritable(status_fd, False)  # close-on-exec: the program never holds the status pipe
        if cfg["uid"] is None:
            os.setpgid(0, 0)
        _set_limits(cfg["limits"])
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then a hard exit
        _emit(status_fd, event="error", where="exec", msg=repr(exc))
        os._exit(126)


def _emit(fd: int, **event) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time here
        os.write(fd, (repr(event) + "\n").encode())
    except OSError:
        pass  # the caller is gone: nobody to tell


def _reap(pid: int, cfg: dict) -> tuple[int | None, float]:
    """Wait for the main process, then kill what it left and reap every orphan; returns (wait status, CPU s)."""
    status, cpu = None, 0.0
    while status is None:
        try:
            wpid, wstatus, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if wpid == pid:
            status, cpu = wstatus, usage.ru_utime + usage.ru_stime
    if cfg["uid"] is not None:
        sweep_uid(cfg["uid"])
    else:
        try:  # noqa: SIM105 - contextlib costs start-up time here
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            wpid, _, _ = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if wpid == 0:
            time.sleep(0.005)
    return status, cpu


def main() -> None:
    cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
    status_fd = cfg["status_fd"]
    try:
        net, mnt = isolate(cfg["root"])
        plan = cfg["mounts"]
        if mnt and plan:
            setup_mounts(plan, cfg["cwd"])
        elif any(entry.get("required") for entry in plan):
            raise OSError("the interpreter is not reachable by the sandbox user and no mount namespace is available")
        _check(_libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
    except BaseException as exc:  # noqa: BLE001
        _emit(status_fd, event="error", where="setup", msg=repr(exc))
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        _child(cfg, status_fd)
    _emit(status_fd, event="started", pid=pid, network_isolated=net, private_mounts=bool(mnt and plan))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the program's pipes must close when the program's processes are gone
        os.dup2(devnull, fd)
    status, cpu = _reap(pid, cfg)
    if status is not None:
        _emit(status_fd, event="exit", returncode=os.waitstatus_to_exitcode(status), cpu_s=cpu)
    os._exit(0)


if __name__ == "__main__":
    main()
