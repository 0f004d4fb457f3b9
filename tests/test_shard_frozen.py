"""distill.launch.shard_frozen: a model that only runs forward (OPD's teacher, GRPO's reference) is sharded as the
trained model is, one FSDP2 unit per decoder layer, frozen, and leaves the FSDP plugin's wrap policy as the config
set it for the trained model prepared after it (accelerate's set_auto_wrap_policy fixes it to the first model's
layer classes). Run on one gloo rank in a child process, so this test's process group cannot leak into others."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, tempfile
from types import SimpleNamespace

import torch
import torch.distributed as dist
from accelerate.utils import FullyShardedDataParallelPlugin
from torch.distributed.fsdp import FSDPModule
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
from transformers import AutoModelForCausalLM

from distill.launch import shard_frozen

dist.init_process_group("gloo", rank=0, world_size=1, init_method="file://" + tempfile.mktemp())
plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                        reshard_after_forward=True, cpu_ram_efficient_loading=False)
accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), mixed_precision="no",
                              torch_device_mesh=None, is_main_process=True, device=torch.device("cpu"))
teacher_dir, student_dir = sys.argv[1], sys.argv[2]
teacher = AutoModelForCausalLM.from_pretrained(teacher_dir)
ids = torch.tensor([[1, 2, 3, 4, 5]])
with torch.no_grad():
    before = teacher(input_ids=ids).logits
sharded, held = shard_frozen(teacher, accelerator)
with torch.no_grad():
    after = sharded(input_ids=ids).logits
student = AutoModelForCausalLM.from_pretrained(student_dir)
plugin.set_auto_wrap_policy(student)        # what accelerate does when it prepares the trained model
wraps = plugin.auto_wrap_policy.keywords["transformer_layer_cls"]
print(json.dumps({
    "held": held, "layers": teacher.config.num_hidden_layers,
    "units": sum(isinstance(m, FSDPModule) for m in sharded.modules()),
    "frozen": not any(p.requires_grad for p in sharded.parameters()), "training": sharded.training,
    "same_logits": bool(torch.allclose(before, after, atol=1e-5)),
    "student_wraps": sorted(c.__name__ for c in wraps),
    "policy_is_the_configs": plugin.auto_wrap_policy.func is transformer_auto_wrap_policy,
}))
dist.destroy_process_group()
"""


def test_a_frozen_model_is_sharded_per_layer_and_leaves_the_wrap_policy_to_the_trained_one(tiny_qwen, tiny_llama):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tiny_qwen), str(tiny_llama)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["held"] == f"sharded (FSDP2, {got['units']} units)" and got["units"] > got["layers"]
    assert got["frozen"] and not got["training"] and got["same_logits"]
    # the student (Llama) is wrapped by its own layer class, not by the teacher's (Qwen2) that came first
    assert got["student_wraps"] == ["LlamaDecoderLayer"] and got["policy_is_the_configs"]
