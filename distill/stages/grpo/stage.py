"""``distill grpo``: the R1-Zero teacher stage — GRPO with rule-based rewards, on TRL's GRPOTrainer.

R1-Zero showed that GRPO with only an accuracy reward and a format reward grows long reasoning in a base
model. This stage runs that recipe on a user's base model: problems with verifiable answers -> R1-Zero
(or chat) prompts -> G sampled completions per prompt (vLLM on GPUs, transformers elsewhere) -> rewards
from ``distill.rewards`` (the same verifier as the filter and the eval) -> GRPO updates with a KL term.

What a user watches, all in ``--out``: ``metrics.jsonl`` (one row per step: each reward's mean and std,
accuracy, format rate, mean completion length, KL, clip ratio, step time), ``eval.jsonl`` + ``eval/``
(held-out pass@1 over n samples, every ``eval_every`` steps), ``plots/*.png`` (accuracy and response
length against step, the paper's two R1-Zero curves). ``checkpoints/`` holds resumable checkpoints
(``--resume``); the final model (bf16 shards when trained in bf16), tokenizer and chat template are saved in
``--out`` itself, a normal HF folder that ``distill generate --teacher DIR`` loads.

Departures from the paper: the KL term is TRL's k3 estimator against the frozen base (the paper's form);
``loss_type`` defaults to ``grpo`` (per-sequence normalisation, as in the paper) where TRL defaults to
``dapo``; group size, lengths and steps are far below the paper's (e.g. 8-16 samples and 1-4k tokens,
not 16 samples and 32k tokens) so a run fits one node. On CPU the rollouts use transformers' generate:
TRL's vLLM weight sync needs CUDA.

Where each path was exercised: the transformers-rollout path trains, evaluates, checkpoints, stops on Ctrl-C
or SIGTERM and resumes in the CPU test suite (tests/test_grpo_train.py). The vLLM paths (colocate; server mode with
scripts/slurm/grpo.slurm) are checked on CPU only up to the GRPOConfig and the ``trl vllm-serve`` command a
recipe resolves to (tests/test_grpo.py); the ``gpu``-marked test runs colocate for real where CUDA exists.
Ctrl-C or SIGTERM (a Slurm preemption, ``docker stop``) finishes the step and saves a checkpoint in a single
process (:class:`distill.training_stop.GracefulStop`); under ``accelerate launch`` the launcher may stop the ranks
first, and the last periodic checkpoint is the place to resume from.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from distill.config import config_to_dict
from distill.data.jsonl import read_jsonl
from distill.errors import DistillError
from distill.launch import (
    ShardsCpuRanks,
    held_unless_fsdp,
    launch_recipe,
    relaunch_stage,
    shard_frozen,
    sharding_of,
    should_relaunch,
)
from distill.models import require_folder
from distill.run_start import Start, decide_on_main, decide_start
from distill.runinfo import RunRecord
from distill.stages.grpo.config import GRPOStageConfig
from distill.stages.grpo.data import prepare, r1_zero_chat_template
from distill.stages.grpo.heldout import EvalSettings, HeldOutEval
from distill.stages.grpo.metrics import keep_until
from distill.stages.grpo.reward_setup import setup_rewards
from distill.stages.grpo.trl_args import CHECKPOINTS, cuda_available, make_grpo_config, trl_kwargs, vllm_installed
from distill.stages.grpo.watch import build_watchers
from distill.weights import to_bf16

log = logging.getLogger(__name__)

LAUNCH_RECIPE = launch_recipe("grpo")      # written into --out by distill.launch.relaunch


def run(cfg: GRPOStageConfig) -> Path:

    _check_inputs(cfg)
    out = Path(cfg.out)
    if should_relaunch(cfg.num_processes, cfg.accelerate_config):
        # train() on num_processes ranks; --overwrite is acted on here, before the launch (see distill.launch)
        return relaunch_stage("grpo", cfg, out, finished=lambda: _prepare_out(cfg, out).done, cuda=cuda_available,
                              bf16=cfg.bf16 is not False)
    return train(cfg)


def _check_inputs(cfg: GRPOStageConfig) -> None:
    if not cfg.model:
        raise DistillError("grpo needs a base model: --model DIR_OR_HUB_ID (or grpo.model in the recipe)")
    if not cfg.dataset:
        raise DistillError("grpo needs problems with answers: --dataset HUB_ID_OR_FILE (or grpo.dataset)")


def train(cfg: GRPOStageConfig, *, rewards: Any = None) -> Path:
    """Train, watch and save. ``rewards`` (a :class:`~distill.stages.grpo.reward_setup.RewardSetup`) replaces the
    recipe's rewards: tests use it for toy tasks."""

    _check_inputs(cfg)
    out = Path(cfg.out)
    setup = rewards or setup_rewards(cfg.rewards, max_completion_length=cfg.max_completion_length)
    watchers = build_watchers(cfg.watch)             # logged beside the rewards with weight 0: never rewarded
    kwargs = trl_kwargs(cfg, reward_weights=setup.weights + [0.0] * len(watchers), cuda=cuda_available(),
                        have_vllm=vllm_installed())
    args = make_grpo_config(kwargs)              # also sets up the process group under accelerate
    main_process = args.process_index == 0
    start = decide_on_main(lambda: _prepare_out(cfg, out), process_index=args.process_index,
                           world_size=args.world_size)
    if start.done:
        return out                                   # finished earlier with the same config
    resume_from = start.checkpoint


    tokenizer = _load_tokenizer(cfg)
    data = prepare(cfg, tokenizer)
    record = RunRecord("grpo", cfg, inputs={k: v for k, v in (("model", cfg.model), ("dataset", cfg.dataset),
                                                                ("eval_dataset", cfg.eval_dataset))
                                            if v and Path(v).exists()})
    record.counts.update(data.counts())
    record.extra.update({"generation": "vllm" if kwargs["use_vllm"] else "transformers",
                         "vllm_mode": kwargs.get("vllm_mode"), "prompt_template": cfg.template,
                         "rewards": dict(zip(setup.labels, setup.weights)), "world_size": args.world_size,
                         "watch": [w.name for w in watchers],
                         "resumed_from": str(resume_from) if resume_from else None,
                         "dropped_examples": {reason: ids[:20] for reason, ids in data.dropped.items()}})
    if main_process:
        record.write(out, status="partial")
    log.info("grpo: %d training problems, %d held-out; rewards %s; rollouts with %s", len(data.train),
             len(data.heldout), setup.describe(), record.extra["generation"])

    trainer, stop = _build_trainer(cfg, args, setup, tokenizer, data, out, record,
                                               resuming=resume_from is not None)
    record.extra["sharding"] = sharding_of(trainer.accelerator)
    record.extra["reference_held"] = trainer.reference_held     # none (beta 0), whole, or sharded as the policy is
    if main_process:                                  # rows logged after the checkpoint are redone
        _trim_logs(out, _checkpoint_step(resume_from) if resume_from else 0)
    started = time.time()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    steps = trainer.state.global_step
    record.counts["steps"] = steps
    if steps == 0 and not stop.requested:
        _refuse_empty_run(cfg, args, len(data.train), record, out, main_process)
    if stop.requested:
        if main_process:
            record.write(out, status="partial")
            print(f"grpo: stopped after step {steps}; checkpoint saved in {out / 'checkpoints'}. Rerun the same "
                  "command to continue from it.")
        raise KeyboardInterrupt
    _save_final(cfg, trainer, tokenizer, out, main_process)
    if not main_process:
        return out
    if cfg.keep_best:
        record.counts.update(_select_best(out, steps))
    if kwargs["bf16"]:
        to_bf16(out)           # trained in bf16: bf16 shards, as sft and opd save theirs (after keep_best's copy)
    _summarise(record, out, time.time() - started)
    record.write(out, status="complete")
    _print_summary(record, out)
    return out


# ---------------------------------------------------------------------------------------------- pieces
def _refuse_empty_run(cfg: GRPOStageConfig, args: Any, problems: int, record: RunRecord, out: Path,
                      main_process: bool) -> None:
    """Zero optimizer steps is a failed run, never "complete" (TRL drops a last batch it cannot fill)."""
    prompts = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    prompts //= max(1, cfg.num_generations)
    if main_process:
        record.write(out, status="failed")
    raise DistillError(f"grpo trained 0 steps: {problems} training problem(s) do not fill one batch of {prompts} "
                       f"prompts x {cfg.num_generations} generations; add problems, or lower "
                       "per_device_train_batch_size / raise num_generations")


def _same_run(previous: dict[str, Any], cfg: GRPOStageConfig) -> bool:
    """Whether a run.json records this config (how the run was started, --resume/--overwrite, aside)."""
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in ("resume", "overwrite")}

    return strip(previous.get("config") or {}) == strip(json.loads(json.dumps(config_to_dict(cfg), default=str)))


def _prepare_out(cfg: GRPOStageConfig, out: Path) -> Start:
    """Done, resume or start fresh (:func:`distill.run_start.decide_start`). Rerunning the same command resumes from
    the last complete checkpoint; ``--resume`` also continues a run whose settings changed (a finished run given
    more ``max_steps``)."""
    return decide_start("grpo", out, checkpoints=CHECKPOINTS, overwrite=cfg.overwrite, resume=cfg.resume,
                        same=lambda previous: _same_run(previous, cfg), ours=(LAUNCH_RECIPE,))


def _checkpoint_step(path: Path) -> int:
    try:
        return int(Path(path).name.rsplit("-", 1)[-1])
    except ValueError:
        return 0


def _trim_logs(out: Path, step: int) -> None:
    from distill.stages.grpo.callbacks import EVAL_FILE, METRICS_FILE

    for name in (METRICS_FILE, EVAL_FILE):
        dropped = keep_until(out / name, step)
        if dropped:
            log.info("resume from step %d: dropped %d rows of %s logged after that checkpoint", step, dropped, name)


def _load_tokenizer(cfg: GRPOStageConfig) -> Any:
    from transformers import AutoTokenizer

    require_folder(cfg.model)
    try:
        tok = AutoTokenizer.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistillError(f"could not load the tokenizer of {cfg.model!r}: {exc}") from None
    if cfg.template == "chat" and not getattr(tok, "chat_template", None):
        raise DistillError(f"{cfg.model}: the tokenizer has no chat template; use template: r1-zero (plain-text "
                           "prompts) or a model that has one")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _build_trainer(cfg: GRPOStageConfig, args: Any, setup: Any, tokenizer: Any, data: Any, out: Path,
                   record: RunRecord, *, resuming: bool) -> tuple[Any, Any]:
    import datasets
    from transformers import ProgressCallback as HFProgress

    from distill.stages.grpo.callbacks import HeldOutCallback, MetricsCallback, ProgressCallback
    from distill.training_stop import GracefulStop, OnSave

    stop = GracefulStop()
    watchers = build_watchers(cfg.watch)
    callbacks: list[Any] = [MetricsCallback(out, setup, plot_every=cfg.plot_every), ProgressCallback(), stop]
    if data.heldout:
        settings = EvalSettings(samples=cfg.eval_samples, temperature=cfg.eval_temperature, top_p=cfg.eval_top_p,
                                max_new_tokens=cfg.eval_max_new_tokens or cfg.max_completion_length,
                                batch_size=cfg.eval_batch_size, seed=cfg.seed)
        evaluator = HeldOutEval(data.heldout, tokenizer, settings, setup.verify,
                                prompt_has_think=setup.prompt_has_think, rank=args.process_index,
                                world=args.world_size)
        callbacks.append(HeldOutCallback(evaluator, out, every=cfg.eval_every,
                                         at_start=cfg.eval_at_start and not resuming, stopping=lambda: stop.requested,
                                         keep_best=cfg.keep_best, watchers=watchers))

    def refresh_run_json(step: int) -> None:
        record.counts["steps"] = step
        record.write(out, status="partial")

    callbacks.append(OnSave(refresh_run_json))
    try:
        trainer = _trainer_class()(model=cfg.model, reward_funcs=setup.funcs + [w.reward_fn() for w in watchers],
                                   args=args, train_dataset=datasets.Dataset.from_list(data.train),
                                   processing_class=tokenizer, callbacks=callbacks)
    except OSError as exc:
        raise DistillError(f"could not load the model {cfg.model!r}: {exc}") from None
    trainer.remove_callback(HFProgress)
    return trainer, stop


def _trainer_class() -> Any:
    """TRL's GRPOTrainer, whose accelerator also shards CPU ranks launched with an FSDP or DeepSpeed config
    (:func:`distill.launch.adopt_cpu_sharding`: accelerate alone trains them as DDP, reference model included), and
    whose reference model under FSDP is sharded as the policy is, from rank 0's weights
    (:func:`distill.launch.shard_frozen` in place of TRL's ``prepare_fsdp``, which TRL's module calls by name)."""
    import trl.trainer.grpo_trainer as trl_grpo
    from trl import GRPOTrainer

    class DistillGRPOTrainer(ShardsCpuRanks, GRPOTrainer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            held: list[str] = []

            def prepare(model: Any, accelerator: Any) -> Any:
                model, how = shard_frozen(model, accelerator)
                held.append(how)
                return model

            trl_grpo.prepare_fsdp, original = prepare, trl_grpo.prepare_fsdp
            try:
                super().__init__(*args, **kwargs)
            finally:
                trl_grpo.prepare_fsdp = original
            self.reference_held = _reference_held(self, held)

    return DistillGRPOTrainer


def _reference_held(trainer: Any, fsdp_prepared: list[str]) -> str:
    """run.json's ``reference_held``: ``none`` (beta 0, or PEFT), ``whole``, ``sharded (ZeRO-3)`` or FSDP's."""
    if trainer.ref_model is None:
        return "none"
    return fsdp_prepared[-1] if fsdp_prepared else held_unless_fsdp(trainer)


def _save_final(cfg: GRPOStageConfig, trainer: Any, tokenizer: Any, out: Path, main_process: bool) -> None:

    trainer.save_model(str(out))
    if not main_process:
        return
    choice = cfg.final_chat_template
    if choice == "r1-zero" or (choice == "auto" and cfg.template == "r1-zero"):
        tokenizer.chat_template = r1_zero_chat_template()
    tokenizer.save_pretrained(str(out))
    stale = out / "training_args.bin"
    if stale.exists():
        stale.unlink()                                # pickled TrainingArguments: not needed to load the model


def _select_best(out: Path, last_step: int) -> dict[str, Any]:
    """keep_best: put the best held-out policy's weights in ``out`` (the last step's are replaced)."""
    from distill.stages.grpo.callbacks import BEST_DIR, BEST_FILE

    best = out / BEST_DIR
    if not (best / BEST_FILE).is_file():
        log.warning("keep_best: no held-out eval ran, so the final model is the last step's")
        return {"selected_step": last_step}
    selected = json.loads((best / BEST_FILE).read_text(encoding="utf-8"))
    if selected["step"] != last_step:
        for item in best.iterdir():
            if item.name != BEST_FILE:
                shutil.copy2(item, out / item.name)
        print(f"grpo: keep_best: the final model is the policy at step {selected['step']} (held-out pass@1 "
              f"{selected['pass@1']:.3f}, the best eval), not the last step {last_step}")
    shutil.rmtree(best)
    return {"selected_step": selected["step"], "selected_pass@1": selected["pass@1"]}


def _summarise(record: RunRecord, out: Path, wall: float) -> None:
    from distill.stages.grpo.callbacks import EVAL_FILE, METRICS_FILE

    rows = read_jsonl(out / METRICS_FILE) if (out / METRICS_FILE).is_file() else []
    evals = read_jsonl(out / EVAL_FILE) if (out / EVAL_FILE).is_file() else []
    c = record.counts
    c["train_wall_s"] = round(wall, 1)
    if rows:
        window = max(1, min(10, len(rows) // 2))
        watched = sorted({k for r in rows for k in r if k.startswith("watch/")})
        for key in ("reward", "accuracy", "format_rate", "completion_length", *watched):
            first = [r[key] for r in rows[:window] if r.get(key) is not None]
            last = [r[key] for r in rows[-window:] if r.get(key) is not None]
            if first and last:
                c[f"{key}_first{window}"] = round(sum(first) / len(first), 4)
                c[f"{key}_last{window}"] = round(sum(last) / len(last), 4)
    if evals:
        c["heldout_pass@1_start"] = evals[0]["pass@1"]
        c["heldout_pass@1_end"] = evals[-1]["pass@1"]
        c["heldout_eval_steps"] = [e["step"] for e in evals]


def _print_summary(record: RunRecord, out: Path) -> None:
    c = record.counts
    lines = [f"grpo: {c.get('steps', 0)} steps on {c['train_problems']} problems in {c['train_wall_s'] / 60:.1f} min "
             f"({record.extra['generation']} rollouts)"]
    watched = [(k.split("_first")[0], f"{k[6:].split('_first')[0]} share") for k in c
               if k.startswith("watch/") and "_first" in k]
    for key, label in (("reward", "reward"), ("accuracy", "train accuracy"), ("format_rate", "format rate"),
                       ("completion_length", "mean completion tokens"), *watched):
        first = next((v for k, v in c.items() if k.startswith(f"{key}_first")), None)
        last = next((v for k, v in c.items() if k.startswith(f"{key}_last")), None)
        if first is not None and last is not None:
            lines.append(f"  {label}: {first:.3f} -> {last:.3f} (first vs last steps)")
    if "heldout_pass@1_start" in c:
        lines.append(f"  held-out pass@1: {c['heldout_pass@1_start']:.3f} -> {c['heldout_pass@1_end']:.3f} "
                     f"({c['heldout_problems']} problems)")
    lines.append(f"  model: {out}  (distill generate --teacher {out})")
    lines.append(f"  watch: {out / 'metrics.jsonl'}, {out / 'eval.jsonl'}, {out / 'plots'}")
    print("\n".join(lines))
