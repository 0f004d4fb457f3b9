"""The Slurm scripts on a twin of a cluster: scripts/slurm/*.slurm as written, run by stand-ins for sbatch, srun,
scancel and scontrol (tests/slurm_bin, see its README.md), with the real accelerate, torchrun and distill.

Each node of the twin is a network + mount + UTS namespace of this machine: its own hostname (node001, ...), its
own localhost, an /etc/hosts naming every node, all joined by a bridge, so a rank can reach another node only at
the address and port it was given. Every node also holds torchrun's default ports (29400, 29500) with a listener
that refuses the protocol, and the scripts get MASTER_PORT=29611: a launcher that ignores the rendezvous endpoint
fails here instead of meeting the other nodes on a default port. DISTILL_CPU_RANKS=1 runs one CPU rank (gloo) per
node where a cluster runs one per GPU. The multi-node tests need root (namespaces) and skip without it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "tests" / "slurm_bin"
SCRIPTS = REPO / "scripts" / "slurm"
MASTER_PORT = "29611"                   # not one of torchrun's defaults, which the twin's nodes hold


def _netns_missing() -> str:
    """Why the twin cannot make nodes here ('' when it can)."""
    if os.geteuid() != 0:
        return "the twin's nodes are network namespaces: needs root"
    missing = [t for t in ("unshare", "nsenter", "ip", "mount", "hostname") if not shutil.which(t)]
    if missing:
        return "the twin's nodes need " + ", ".join(missing)
    probe = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"], capture_output=True)
    return "" if probe.returncode == 0 else "unshare of network/mount/UTS namespaces refused"


NETNS_MISSING = _netns_missing()
needs_nodes = pytest.mark.skipif(bool(NETNS_MISSING), reason=NETNS_MISSING or "-")


class Twin:
    """One submit folder (recipes/ as in the checkout, logs/ made first, as the scripts' usage says) and the
    environment that puts the stand-ins first on PATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.submit = root / "submit"
        self.submit.mkdir(parents=True)
        (self.submit / "recipes").symlink_to(REPO / "recipes")
        (self.submit / "logs").mkdir()
        self.state = root / "twin"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM", "MASTER_", "DISTILL_CPU"))}
        self.env = dict(base, PATH=os.pathsep.join([str(BIN), str(Path(sys.executable).parent), base["PATH"]]),
                        SLURM_TWIN_DIR=str(self.state), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")

    def sbatch(self, *args: object, env: dict[str, str] | None = None, timeout: float = 300,
               popen: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
        cmd = ["sbatch", *map(str, args)]
        full_env = dict(self.env, **(env or {}))
        if popen:
            return subprocess.Popen(cmd, cwd=self.submit, env=full_env, stdout=subprocess.PIPE, text=True)
        return subprocess.run(cmd, cwd=self.submit, env=full_env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> str:
        return "".join(f"==> {p.name}\n{p.read_text(errors='replace')}" for p in sorted((self.submit / "logs").iterdir()))

    def batch_pids(self) -> dict[str, int]:
        jobs = self.state / "jobs"
        return {p.parent.name: int(p.read_text()) for p in jobs.glob("*/batch.pid")} if jobs.is_dir() else {}

    def kill_all(self) -> None:
        for job in self.batch_pids():
            subprocess.run(["scancel", "--signal=KILL", "--full", job], env=self.env, timeout=30)


@pytest.fixture
def twin(tmp_path):
    t = Twin(tmp_path)
    yield t
    t.kill_all()


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    import datasets
    from test_sft import rows

    folder = tmp_path_factory.mktemp("slurm-sft-data") / "data"
    datasets.Dataset.from_list(rows(16)).save_to_disk(str(folder))
    return folder


# ---------------------------------------------------------------------------------------------- the stand-ins
@pytest.mark.parametrize(("spec", "names"), [
    ("node[001-002]", ["node001", "node002"]),
    ("node[001-003,007],gpu1", ["node001", "node002", "node003", "node007", "gpu1"]),
    ("a[8-10]", ["a8", "a9", "a10"]),
])
def test_scontrol_expands_hostlists_as_slurm_does(spec, names):
    out = subprocess.run([BIN / "scontrol", "show", "hostnames", spec], capture_output=True, text=True, check=True)
    assert out.stdout.split() == names


# ------------------------------------------------------------------------------------ sft.slurm: the rendezvous
def torchrun_config(launch: dict):
    """What ``accelerate launch`` with this command line hands torchrun, through accelerate's own code
    (commands/launch.py launch_command: the parser, _validate_launch_command, then multi_gpu_launcher's
    prepare_multi_gpu_env or deepspeed_launcher's prepare_deepspeed_cmd_env), then torchrun's config_from_args."""
    import torch.distributed.run as distrib_run
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import _filter_args, prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    with mock.patch.dict(os.environ, launch["env"]):
        args = launch_command_parser().parse_args(launch["argv"][2:])
        args, defaults, mp_from_config = _validate_launch_command(args)
        if args.use_deepspeed:                       # as launch_command does before deepspeed_launcher
            fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
            args.deepspeed_fields_from_accelerate_config = ",".join(fields)
            cmd, _ = prepare_deepspeed_cmd_env(args)
            assert cmd is None, f"multi-node DeepSpeed goes through {cmd}, not torchrun"
        else:
            assert args.multi_gpu or args.use_fsdp, "the launch would not go through torchrun"
            prepare_multi_gpu_env(args)
        targs = _filter_args(args, distrib_run.get_args_parser(),
                             ["--training_script", args.training_script, "--training_script_args",
                              args.training_script_args])
        config, _, _ = distrib_run.config_from_args(targs)
    return config


@pytest.mark.parametrize(("strategy", "cpu_ranks"), [("ddp", True), ("zero3", False)])
def test_sft_slurm_gives_every_node_the_rendezvous_endpoint(twin, tiny_qwen, sft_data, strategy, cpu_ranks):
    """The launcher command lines sft.slurm builds on each node (recorded, not run), read by accelerate and
    torchrun: c10d must get MASTER_ADDR:MASTER_PORT. With --same_network accelerate set only master_addr/port,
    which c10d ignores, and rdzv_endpoint stayed '': every node waited alone on its own localhost:29400."""
    record = twin.root / "launches.jsonl"
    env = {"SLURM_TWIN_RECORD": str(record), "MASTER_PORT": MASTER_PORT, "STRATEGY": strategy}
    if cpu_ranks:
        env["DISTILL_CPU_RANKS"] = "1"
    done = twin.sbatch("--nodes=2", SCRIPTS / "sft.slurm", "tiny-qwen", sft_data, twin.root / "student",
                       "--model", tiny_qwen, env=env, timeout=120)
    assert done.returncode == 0, done.stderr + twin.logs()
    launches = [json.loads(line) for line in record.read_text().splitlines()]
    assert [launch["env"]["SLURM_PROCID"] for launch in launches] == ["0", "1"]
    for launch in launches:
        config = torchrun_config(launch)
        assert config.rdzv_backend == "c10d"
        assert config.rdzv_endpoint == f"node001:{MASTER_PORT}", launch["argv"]
        assert (config.min_nodes, config.max_nodes) == (2, 2)
        assert config.nproc_per_node == (1 if cpu_ranks else 8)
        # the pre-timeout SIGTERM goes to every process of the step: the launcher must leave it to the ranks
        assert launch["sigterm_ignored"], "the launcher would pass a second SIGTERM on, then SIGKILL the ranks"
        assert "SIGTERM" not in config.signals_to_handle.split(",")


def test_sft_slurm_asks_slurm_to_warn_the_steps_not_the_batch_shell():
    """'#SBATCH --signal=B:SIG@T' makes slurmstepd kill() the batch shell alone (src/slurmd/slurmstepd/req.c,
    _handle_signal_container, KILL_JOB_BATCH); without 'B:' the signal goes to every process of the job's steps
    (proctrack_g_signal), which is where the ranks are."""
    spec = [line.split("=", 1)[1] for line in (SCRIPTS / "sft.slurm").read_text().splitlines()
            if line.startswith("#SBATCH --signal=")]
    assert spec and spec[0].split("@")[0] == "TERM", spec


# ----------------------------------------------------------------------------- sft.slurm on two twin nodes
SFT_ARGS = ("--max-length", "128", "--num-train-epochs", "2", "--logging-steps", "1", "--save-steps", "1000")


@needs_nodes
@pytest.mark.multiproc
@pytest.mark.slow
def test_two_node_sft_ends_where_one_process_with_the_same_global_batch_does(twin, tiny_qwen, sft_data):
    # 2 nodes x 1 CPU rank x 1 row per step, against 1 process x 2 rows per step: the same global batch
    two = twin.root / "two-nodes"
    done = twin.sbatch("--nodes=2", SCRIPTS / "sft.slurm", "tiny-qwen", sft_data, two, "--model", tiny_qwen,
                       *SFT_ARGS, "--per-device-train-batch-size", "1",
                       env={"DISTILL_CPU_RANKS": "1", "MASTER_PORT": MASTER_PORT}, timeout=600)
    log = twin.logs()
    assert done.returncode == 0, done.stderr + log
    assert f"rendezvous node001:{MASTER_PORT}" in log

    one = twin.root / "one-process"
    ref = subprocess.run([Path(sys.executable).parent / "distill", "sft", "--recipe", "recipes/students/tiny-qwen.yaml",
                          "--dataset", str(sft_data), "--out", str(one), "--model", str(tiny_qwen), *SFT_ARGS,
                          "--per-device-train-batch-size", "2", "--num-processes", "1"],
                         cwd=twin.submit, env=twin.env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr

    rec2 = json.loads((two / "run.json").read_text())
    rec1 = json.loads((one / "run.json").read_text())
    assert rec2["status"] == rec1["status"] == "complete"
    assert (rec2["world_size"], rec1["world_size"]) == (2, 1)
    rows = rec1["counts"]["train_rows"]
    assert rec2["counts"]["steps"] == rec1["counts"]["steps"] == 2 * math.ceil(rows / 2)
    last2, last1 = rec2["counts"]["last_loss"], rec1["counts"]["last_loss"]
    assert abs(last2 - last1) <= 0.01 * abs(last1), (last2, last1)
    print(f"steps {rec2['counts']['steps']} vs {rec1['counts']['steps']}; last_loss {last2:.6f} (2 nodes) vs "
          f"{last1:.6f} (1 process)")


@needs_nodes
@pytest.mark.multiproc
@pytest.mark.slow
def test_sigterm_to_the_batch_shell_reaches_every_rank_once_and_they_checkpoint(twin, tiny_qwen, sft_data):
    """A SIGTERM to the batch shell (a 'B:' warning, scancel --batch) reaches the ranks through the step, once
    each: they finish the step, write a checkpoint and stop. (Never through srun: real srun answers SIGTERM by
    SIGKILLing its tasks, as the stand-in does.)"""
    out = twin.root / "student"
    proc = twin.sbatch("--nodes=2", SCRIPTS / "sft.slurm", "tiny-qwen", sft_data, out, "--model", tiny_qwen,
                       "--max-length", "128", "--per-device-train-batch-size", "1", "--max-steps", "100000",
                       "--save-steps", "100000", "--logging-steps", "1",
                       env={"DISTILL_CPU_RANKS": "1", "MASTER_PORT": MASTER_PORT}, popen=True)
    try:
        deadline = time.monotonic() + 400
        losses = out / "loss.jsonl"
        while not (losses.is_file() and losses.read_text().count('"loss"') >= 2):
            assert proc.poll() is None, "the job ended before training\n" + twin.logs()
            assert time.monotonic() < deadline, "no training step within 400 s\n" + twin.logs()
            time.sleep(0.5)
        (job, batch_pid), = twin.batch_pids().items()
        os.kill(batch_pid, signal.SIGTERM)
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = twin.logs()
    assert log.count("SIGTERM: finishing this step and saving a checkpoint") == 2, log
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints, log
    stopped = int(checkpoints[-1].name.split("-")[1])
    logged = [json.loads(line)["step"] for line in losses.read_text().splitlines() if '"loss"' in line]
    assert 2 <= stopped == max(logged) < 100000
    # whole: the main rank wrote its part last (no node's exit cut it short) and recorded the stop
    assert (checkpoints[-1] / "trainer_state.json").is_file(), sorted(p.name for p in checkpoints[-1].iterdir())
    record = json.loads((out / "run.json").read_text())
    assert (record["status"], record["counts"]["stopped_at_step"]) == ("partial", stopped)


# ---------------------------------------------------------------------------------------------- generate.slurm
@pytest.mark.multiproc
@pytest.mark.slow
def test_generate_array_writes_what_one_unsharded_run_writes(twin, tiny_qwen, tmp_path):
    from distill.cli import main

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"What is {i} + {i + 1}?",
                                            "answer": str(2 * i + 1)}) + "\n" for i in range(6)))
    # sampled at the recipe's temperature with per-problem seeds; batch size 1 because the hf engine seeds per
    # batch (a batch of other prompts would draw other samples; vllm seeds per request)
    common = ["--teacher", str(tiny_qwen), "--dataset", str(problems), "--num-samples", "2", "--max-tokens", "12",
              "--batch-size", "1", "--seed", "0"]
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    done = twin.sbatch("--array=0-1", SCRIPTS / "generate.slurm", "recipes/generate/tiny-cpu.yaml", *common,
                       "--out", sharded, timeout=600)
    assert done.returncode == 0, done.stderr + twin.logs()
    shards = sorted(sharded.glob("shard-*.jsonl"))
    assert [p.name for p in shards] == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl"]
    assert all(p.read_text().strip() for p in shards), "a shard is empty: the comparison would prove little"
    assert main(["generate", "--recipe", str(REPO / "recipes/generate/tiny-cpu.yaml"), *common,
                 "--out", str(whole)]) == 0

    def triples(folder: Path) -> list[tuple]:
        rows = [json.loads(line) for p in folder.glob("shard-*.jsonl") for line in p.read_text().splitlines()]
        return sorted((r["id"], r["sample"], r["completion"]) for r in rows)

    assert len(triples(whole)) == 12
    assert triples(sharded) == triples(whole)


# ------------------------------------------------------------------------------------------ the usage lines
def sbatch_lines() -> list[tuple[str, str]]:
    """Every 'sbatch ... scripts/slurm/X.slurm ...' command in README.md and in the scripts' usage comments."""
    found = []
    sources = [REPO / "README.md", *sorted(SCRIPTS.glob("*.slurm"))]
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if path.suffix == ".slurm" and not line.startswith("# "):
                continue                             # a script's usage lines are its comments
            text = re.sub(r"\[[^\]]*\]", "", line.lstrip("# ").split("  #")[0]).strip()   # [optional ...]
            if "sbatch " in text and "scripts/slurm/" in text:
                found.append((f"{path.name}:{number}", text[text.index("sbatch "):]))
    return found


@pytest.mark.parametrize(("source", "line"), sbatch_lines(), ids=[source for source, _ in sbatch_lines()])
def test_documented_sbatch_lines_pass_the_scripts_argument_checks(source, line, capsys, monkeypatch):
    from distill.cli import main

    monkeypatch.chdir(REPO)
    words = shlex.split(line)
    at = next(i for i, w in enumerate(words) if w.startswith("scripts/slurm/"))
    script, args = Path(words[at]).name, words[at + 1:]
    assert (REPO / words[at]).is_file(), line
    if script == "sft.slurm":                        # STUDENT DATASET OUT [distill sft options]
        assert len(args) >= 3, f"{source}: sft.slurm takes STUDENT DATASET OUT: {line}"
        recipe = REPO / "recipes" / "students" / f"{args[0]}.yaml"
        assert recipe.is_file(), f"{source}: no student recipe {recipe.name}: {line}"
        argv = ["sft", "--recipe", str(recipe), "--dataset", args[1], "--out", args[2], *args[3:]]
    else:                                            # RECIPE [distill generate / grpo options]
        assert args and (REPO / args[0]).is_file(), f"{source}: the first argument must be a recipe: {line}"
        argv = [script.removesuffix(".slurm"), "--recipe", args[0], *args[1:]]
        if script == "generate.slurm":
            assert any(w.startswith("--array") for w in words[:at]), f"{source}: generate.slurm is an array job"
    assert main([*argv, "--print-config"]) == 0, f"{source}: {line}\n{capsys.readouterr().err}"
