"""Run a stage under ``accelerate launch`` (several processes, DeepSpeed, FSDP), from a stage's ``run()``.

A stage that needs more than one process (:func:`should_relaunch`) calls :func:`relaunch_stage`: the launching
process looks at the output folder first, then :func:`relaunch` writes the resolved config to a recipe file there
(:func:`launch_recipe`), ``accelerate launch --config_file recipes/accelerate/<strategy>.yaml --num_processes N
-m distill <stage> --recipe that-file`` runs the stage again, every rank in-process, and the launcher checks that
the ranks finished. Passing the resolved config rather than the original command line makes the relaunch
independent of how the stage was called (CLI, pipeline, tests). Inside a launched process (or any
``torchrun``/``accelerate``/Slurm rank, which set ``LOCAL_RANK``) :func:`in_launched_process` is true and the stage
runs in-process.

Used by ``distill sft`` and ``distill grpo``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from distill.config import config_to_dict
from distill.errors import DistillError
from distill.runinfo import read_run

log = logging.getLogger(__name__)

LAUNCHED_ENV = "DISTILL_LAUNCHED"


def recipes_dir_candidates() -> list[Path]:
    """Where the recipes may be: this checkout's ``recipes/``, then an installed copy (pyproject's data-files put
    it under ``<sys.prefix>/share/distill/recipes``)."""
    return [Path(__file__).resolve().parents[1] / "recipes", Path(sys.prefix) / "share" / "distill" / "recipes"]


def recipes_dir() -> Path:
    """The recipes folder (the first candidate holding ``students/``); the checkout's path when there is none, so
    callers report the file they looked for."""
    candidates = recipes_dir_candidates()
    return next((c for c in candidates if (c / "students").is_dir()), candidates[0])


RECIPES = recipes_dir()


def in_launched_process() -> bool:
    """True inside a process started by accelerate/torchrun (or by :func:`relaunch`)."""
    return os.environ.get(LAUNCHED_ENV) == "1" or "LOCAL_RANK" in os.environ


def started_by_relaunch() -> bool:
    """True inside a rank that :func:`relaunch` started: the launching process has already acted on --overwrite
    (the ranks must not empty the folder again, where the launch recipe now lies)."""
    return os.environ.get(LAUNCHED_ENV) == "1"


def should_relaunch(num_processes: int, accelerate_config: str = "") -> bool:
    return (num_processes > 1 or bool(accelerate_config)) and not in_launched_process()


def per_rank_placement(num_processes: int, accelerate_config: str = "") -> dict[str, Any]:
    """``from_pretrained`` keywords for a model TRL loads itself in each rank of a launch: ``device_map`` None.

    TRL 1.16 passes ``device_map="auto"`` on a GPU machine and drops it only under DDP and DeepSpeed, not FSDP:
    there every rank would load the model spread over all the node's GPUs. With CPU-RAM-efficient loading
    transformers then skips the dispatch hooks, so a model that is not prepared for training (OPD's teacher) runs
    its layers on eight devices with no hook to move the activations; without it, accelerate refuses the
    dispatched model. Loaded on the CPU, the model is sharded onto each rank's GPU when it is prepared."""
    return {"device_map": None} if num_processes > 1 or accelerate_config else {}


def launch_recipe(section: str) -> str:
    """The file :func:`relaunch` writes into the output folder: the resolved config the ranks read."""
    return f"launch-{section}.yaml"


def accelerate_config_file(strategy: str, explicit: str = "") -> Path:
    """The launch config: ``explicit`` when given, else ``recipes/accelerate/<strategy>.yaml`` of this checkout."""
    path = Path(explicit) if explicit else recipes_dir() / "accelerate" / f"{strategy}.yaml"
    if not path.is_file():
        hint = "" if explicit else " (no recipes/ folder found here or in the install: pass --accelerate-config FILE)"
        raise DistillError(f"accelerate config not found: {path}{hint}")
    return path


def check_launch_config(path: Path) -> dict[str, Any]:
    """Read the accelerate config; refuse early when it needs a library that is missing."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DistillError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise DistillError(f"{path}: an accelerate config must be a mapping")
    if data.get("distributed_type") == "DEEPSPEED" and importlib.util.find_spec("deepspeed") is None:
        raise DistillError(f"{path} uses DeepSpeed, which is not installed: pip install 'distill[deepspeed]' "
                           "(or pick strategy ddp / fsdp)")
    return data


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(num_processes: int) -> None:
    """One process per GPU: refuse before launching when this machine shows fewer GPUs than processes (else
    two ranks share a card and NCCL stops them with 'Duplicate GPU detected')."""
    gpus = visible_gpus()
    if 0 < gpus < num_processes:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={shown})" if shown is not None else ""
        raise DistillError(f"num_processes {num_processes} needs one GPU per process, but this machine shows {gpus}"
                           f"{where}: set num_processes to {gpus} (--set <stage>.num_processes={gpus}), or raise "
                           "gradient_accumulation_steps to keep the batch size")


def launch_command(section: str, recipe_file: Path, *, config_file: Path, num_processes: int,
                   mixed_precision: str, port: int | None = None) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--num_processes", str(num_processes), "--num_machines", "1", "--machine_rank", "0",
            "--mixed_precision", mixed_precision, "--main_process_port", str(port or free_port()),
            "-m", "distill", section, "--recipe", str(recipe_file)]


def relaunch(section: str, cfg: Any, *, workdir: str | Path, config_file: Path, num_processes: int,
             mixed_precision: str = "bf16", cpu: bool = False, env: dict[str, str] | None = None) -> None:
    """Run ``distill <section>`` with ``cfg`` on ``num_processes`` local processes; raise if it fails.

    ``cpu`` runs the ranks on CPU with the gloo backend (tests, CI). Ctrl-C reaches the ranks too (same process
    group); this waits for them to stop and re-raises KeyboardInterrupt.
    """
    check_launch_config(config_file)
    if not cpu:
        check_gpus(num_processes)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    recipe_file = workdir / launch_recipe(section)
    recipe_file.write_text(yaml.safe_dump({section: config_to_dict(cfg, redact=False)}, sort_keys=False))
    cmd = launch_command(section, recipe_file, config_file=config_file, num_processes=num_processes,
                         mixed_precision="no" if cpu else mixed_precision)
    child_env = dict(os.environ, **(env or {}))
    child_env[LAUNCHED_ENV] = "1"
    if cpu:
        child_env["ACCELERATE_USE_CPU"] = "true"
    log.info("launching %d processes: %s", num_processes, " ".join(cmd))
    print(f"distill {section}: launching {num_processes} processes with accelerate ({config_file.name})", flush=True)
    proc = subprocess.Popen(cmd, env=child_env)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        rc = proc.wait()
        raise
    if rc != 0:
        raise DistillError(f"'accelerate launch' exited with code {rc} (see the log above); the command was: "
                           + " ".join(cmd))


def shard_cpu_ranks(accelerator: Any, deepspeed_plugin: Any = None) -> str | None:
    """Make CPU ranks launched with an FSDP or DeepSpeed config shard as GPU ranks do; the kind ("fsdp",
    "deepspeed") when the state was changed, None when it was left alone.

    accelerate 1.15 turns ``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED`` (set by ``accelerate launch`` from
    the config's ``distributed_type``) into ``DistributedType.FSDP`` / ``DEEPSPEED`` only for accelerator devices
    (``AcceleratorState.__init__`` in accelerate/state.py: the FSDP switch sits in the MULTI_GPU/MULTI_XPU/... branch,
    the DeepSpeed one says ``and not cpu``); CPU ranks stay ``MULTI_CPU`` and silently train as plain DDP, every rank
    holding the whole model. torch's FSDP2 itself runs on CPU over gloo (``fully_shard`` builds its default mesh on
    the CPU when there is no accelerator). So on CPU ranks only, the state gets the plugin that the launcher's
    environment describes (``FSDP_*`` / ``ACCELERATE_DEEPSPEED_*`` variables, read by the plugins exactly as
    accelerate reads them on a GPU); a GPU run is left as it is. Call it right after the ``Accelerator`` is made,
    before anything is prepared.
    """
    from accelerate.state import PartialState
    from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return None
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        state.fsdp_plugin = FullyShardedDataParallelPlugin()
        kind, state.distributed_type = "fsdp", DistributedType.FSDP
    elif os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        plugin = deepspeed_plugin or DeepSpeedPlugin()
        state.distributed_type = DistributedType.DEEPSPEED
        plugin.set_mixed_precision(state._mixed_precision)
        plugin.select(_from_accelerator_state=True)
        state.deepspeed_plugins = plugin
        kind = "deepspeed"
    else:
        return None
    # AcceleratorState.__init__ ends so on a GPU too: every later AcceleratorState() copies PartialState's
    # distributed_type over its own, which would turn these ranks back into DDP ranks.
    PartialState._shared_state["distributed_type"] = state.distributed_type
    return kind


def adopt_cpu_sharding(trainer: Any) -> str | None:
    """For a transformers ``Trainer`` subclass (TRL's SFT and GRPO trainers), called right after its
    ``create_accelerator_and_postprocess``: CPU ranks launched with an FSDP or DeepSpeed config shard
    (:func:`shard_cpu_ranks`) and the trainer's own switches follow, so it prepares, saves and (TRL) builds its
    reference model as it does on GPU ranks. Returns the kind, None when nothing changed (every GPU run)."""
    kind = shard_cpu_ranks(trainer.accelerator, trainer.args.deepspeed_plugin)
    if kind == "fsdp":
        trainer.is_fsdp_enabled = True
        if trainer.accelerator.state.fsdp_plugin.activation_checkpointing and trainer.args.gradient_checkpointing:
            raise DistillError("the FSDP config turns on fsdp_activation_checkpointing and the recipe "
                               "gradient_checkpointing: keep one (recipes/accelerate/fsdp.yaml keeps the trainer's)")
    elif kind == "deepspeed":
        from transformers.integrations.deepspeed import propagate_args_to_deepspeed

        trainer.is_deepspeed_enabled = True
        propagate_args_to_deepspeed(trainer.accelerator, trainer.args)
    return kind


class ShardsCpuRanks:
    """Mixin for the trainers (TRL's SFT, GRPO and IW-OPD trainers): put it first among the bases and
    :func:`adopt_cpu_sharding` runs right after the trainer makes its accelerator."""

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()  # type: ignore[misc]
        adopt_cpu_sharding(self)


def held_unless_fsdp(trainer: Any) -> str:
    """How a frozen model TRL prepares (OPD's teacher, GRPO's reference) is held when FSDP is off:
    ``sharded (ZeRO-3)`` (TRL's ``prepare_deepspeed``), else ``whole`` on every device (one process, DDP, ZeRO-2)."""
    if getattr(trainer, "is_deepspeed_enabled", False) and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3:
        return "sharded (ZeRO-3)"
    return "whole"


def shard_frozen(model: Any, accelerator: Any) -> tuple[Any, str]:
    """FSDP-prepare a model that only runs forward (OPD's teacher, GRPO's reference) as the trained one is;
    ``(model, how it is held)``, e.g. ``sharded (FSDP2, 5 units)``.

    TRL 1.16 prepares such models with its ``prepare_fsdp``, whose FSDP2 branch calls ``fully_shard`` on the root
    only: one unit, so each forward gathers the whole model on every GPU (a 32B reference in bf16: 61 GiB at once),
    and under ``fsdp_cpu_ram_efficient_loading`` the shards of every rank but 0 are cut from the zeros transformers
    loads there (GRPO's KL read 0.063 at step 1 on 2 CPU ranks, where it must be 0). Here FSDP2 gets accelerate's
    own preparation, as the policy does: one unit per decoder layer, rank 0's weights broadcast. The parameters are
    frozen first, so mixed precision does not upcast them to fp32 master weights, and every unit gives its gathered
    weights back after the forward (no backward will). FSDP1 keeps TRL's ``prepare_fsdp``: an auto-wrap policy,
    ``sync_module_states`` broadcasting rank 0's weights."""
    plugin = accelerator.state.fsdp_plugin
    # set_auto_wrap_policy fixes the plugin's policy to the first model's layer classes: the trained model, prepared
    # later, must find the policy as the config left it (an OPD teacher may be of another architecture)
    policy = (plugin.auto_wrap_policy, plugin.transformer_cls_names_to_wrap)
    model.requires_grad_(False)
    try:
        if plugin.fsdp_version == 2:
            from accelerate.utils.fsdp_utils import fsdp2_prepare_model
            from torch.distributed.fsdp import FSDPModule

            model = fsdp2_prepare_model(accelerator, model)
            model.set_reshard_after_forward(True)
            held = f"sharded (FSDP2, {sum(isinstance(m, FSDPModule) for m in model.modules())} units)"
        else:
            from trl.models.utils import prepare_fsdp

            model, held = prepare_fsdp(model, accelerator), "sharded (FSDP1)"
    finally:
        plugin.auto_wrap_policy, plugin.transformer_cls_names_to_wrap = policy
    model.eval()
    return model, held


def sharding_of(accelerator: Any) -> dict[str, Any]:
    """run.json's record of how the ranks held the model: accelerate's distributed type (NO, MULTI_GPU, MULTI_CPU,
    FSDP, DEEPSPEED) with the FSDP version or ZeRO stage, as the Accelerator will prepare it."""
    state = accelerator.state
    kind = getattr(state.distributed_type, "value", str(state.distributed_type))
    out: dict[str, Any] = {"distributed_type": kind}
    if kind == "FSDP":
        out["fsdp_version"] = state.fsdp_plugin.fsdp_version
    elif kind == "DEEPSPEED":
        out["zero_stage"] = state.deepspeed_plugin.zero_stage
    return out


def process_group_timeout() -> float | None:
    """Seconds the default process group's collectives wait before failing (what ``ddp_timeout`` sets); None without
    a process group, or when the backend does not say."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    group = dist.distributed_c10d._get_default_group()
    for device in ("cuda", "cpu"):
        try:
            backend = group._get_backend(torch.device(device))
        except RuntimeError:                        # no backend for this device in the group
            continue
        timeout = getattr(getattr(backend, "options", None), "_timeout", None)
        if timeout is not None:
            return float(timeout.total_seconds())
    return None


def relaunch_stage(section: str, cfg: Any, out: Path, *, finished: Callable[[], bool], cuda: Callable[[], bool],
                   bf16: bool) -> Path:
    """Run ``distill <section>`` with ``cfg`` on ``cfg.num_processes`` ranks through ``accelerate launch`` (a stage's
    ``run()`` calls this when :func:`should_relaunch`); return ``out`` once the ranks wrote a complete run.json.

    ``cfg`` also carries ``strategy`` and ``accelerate_config`` (:func:`accelerate_config_file`). ``finished`` is the
    stage's own look at ``out``, made here first: it acts on --overwrite in this process (the ranks see
    :func:`started_by_relaunch` and do not empty the folder again, where the launch recipe now lies), and when it
    returns True (``out`` already holds this finished run) nothing is launched. The ranks get this same config, so
    run.json records what was asked for and they reach the same decision about ``out`` (a resume finds the same
    checkpoint). ``cuda()`` picks GPU ranks (one per GPU, bf16 mixed precision when ``bf16``) or CPU ranks (gloo).
    """
    if finished():
        return out
    config_file = accelerate_config_file(cfg.strategy, cfg.accelerate_config)
    on_gpu = cuda()
    relaunch(section, cfg, workdir=out, config_file=config_file, num_processes=cfg.num_processes,
             mixed_precision="bf16" if bf16 and on_gpu else "no", cpu=not on_gpu)
    rec = read_run(out)
    if not rec or rec.get("status") != "complete":
        raise DistillError(f"the launched run ended without a complete {out}/run.json; rerun the same command to "
                           "resume from its last checkpoint")
    return out
