"""A real vLLM OpenAI-compatible server on 127.0.0.1 for the tests that talk to one (the CPU build here).

Used by the engine, judge and opd server tests; each starts its own server (a module-scoped fixture) with its own
model and flags, and this module holds the one way of starting, waiting for and stopping it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """Offline, small KV cache, one thread, caches shared between runs (``DISTILL_VLLM_CACHE``)."""
    cache = Path(os.environ.get("DISTILL_VLLM_CACHE", "/tmp/distill-vllm-cache"))
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(cache),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


@contextmanager
def vllm_openai_server(model: Path | str, tmp: Path, *flags: str, api_key: str | None = None) -> Iterator[str]:
    """Serve ``model`` with ``flags`` (after ``--model``) until the block ends; yields ``http://127.0.0.1:PORT``
    (append ``/v1`` for the OpenAI routes). The server's log is ``tmp/server.log``; its tail is in the error when
    it exits or does not come up."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), *flags]
    headers = {}
    if api_key:
        cmd += ["--api-key", api_key]
        headers["Authorization"] = f"Bearer {api_key}"
    log_path = tmp / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, env=server_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{root}/v1/models", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server did not come up within {START_TIMEOUT_S} s")
            time.sleep(1)
        yield root
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
