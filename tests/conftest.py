"""Test-wide settings: offline, one thread, and shared tiny checkpoints made once per session."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Slurm stand-ins (sbatch, srun, ...) are programs the tests put on PATH, not test modules: never import them.
collect_ignore = ["slurm_bin"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _make_tiny(tmp_path_factory: pytest.TempPathFactory, arch: str) -> Path:
    from distill.stages.tiny.config import TinyConfig
    from distill.stages.tiny.stage import run

    out = tmp_path_factory.mktemp(f"tiny-{arch}") / "model"
    return run(TinyConfig(arch=arch, out=str(out)))


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 checkpoint folder (tokenizer, chat template, weights). Treat as read-only."""
    return _make_tiny(tmp_path_factory, "qwen2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint folder. Treat as read-only."""
    return _make_tiny(tmp_path_factory, "llama")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real AIME/MATH-500 files beside the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real eval data not found at {SHARED_DATA} (it sits beside the checkout on our machines)")
    return SHARED_DATA


@pytest.fixture
def cpu_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Launch tests on CPU ranks (gloo) also on a GPU machine: the stage sees no CUDA, nor do its children."""
    import distill.stages.grpo.trl_args as trl_args
    import distill.stages.sft.stage as sft_stage

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(sft_stage, "_cuda", lambda: False)
    monkeypatch.setattr(trl_args, "cuda_available", lambda: False)


@pytest.fixture
def sigint_default():
    """Ctrl-C tests set their own SIGINT handler: under nohup or `make test &` the inherited one is SIG_IGN."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
