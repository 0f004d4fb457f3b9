"""``distill opd --student DIR --teacher DIR --dataset PROBLEMS --out DIR``: on-policy distillation.

SFT on teacher traces is off-policy: the student never sees its own mistakes. Here the student samples its own
completions to the training problems, the teacher scores every sampled token, and the student is trained to lower
the per-token reverse KL(student || teacher) on its own samples (Agarwal et al. 2024, "On-Policy Distillation of
Language Models"; the recipe Thinking Machines and others use after SFT). A share ``1 - lmbda`` of the batches can
instead be teacher traces (off-policy, the GKD mix).

**Which TRL trainer, and why.** TRL 1.16 ships six: the stable ``DistillationTrainer`` (on-policy only, no
on/off-policy mix, no teacher server; its loss never materialises the full logits), the experimental
``ServerDistillationTrainer`` (that one with a vLLM-served teacher), ``AsyncDistillationTrainer`` (both models
behind vLLM servers: no transformers sampling, so no CPU twin), ``GKDTrainer`` (``lmbda`` mix, no vLLM, no
server), ``GOLDTrainer`` (``lmbda`` + vLLM + cross-tokenizer ULD, no teacher server) and ``IWOPDTrainer``, the
pre-refactor ``DistillationTrainer`` kept as IW-OPD's home. Only ``IWOPDTrainer`` has everything this command
offers in one trainer: the ``lmbda`` mix, student sampling with vLLM (colocate or server) or transformers, the
teacher in-process or behind a vLLM server (prompt logprobs), and the generalized JSD with ``beta`` (1.0 = reverse
KL: its ``_jsd_divergence`` computes ``F.kl_div(teacher_logp, student_logp, log_target=True)`` =
``sum p_s (log p_s - log p_t)``). We run it with ``distillation_objective="jsd"`` (not IW-OPD's weighting) and do
not touch its loss. The costs, stated: it is experimental and TRL marks it unmaintained; it materialises the full
``(batch, length, vocab)`` logits of both models (``distill pipeline --plan`` counts them); and three defects found
by running it are worked around in :mod:`distill.stages.opd.trainer` (resume, loss normalisation, metrics).

**Tokenizers.** The student and the teacher must have the same vocabulary (checked before any weights load; a
mismatch is one line, exit 2). TRL's GOLD aligns different tokenizers (ULD), but distill does not wire it.

Output ``OUT``: the student in HF format (``distill eval --model OUT`` loads it), ``metrics.jsonl`` and
``plots/*.png`` (divergence, student/teacher log-probs of the samples, accuracy of the samples against the gold,
sample length), ``run.json`` (student, teacher, the problems' digest, counts), ``checkpoints/`` while training.
Rerunning the same command resumes from the last checkpoint, also after a SIGKILL.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.launch import relaunch_stage, sharding_of, should_relaunch
from distill.models import require_folder
from distill.run_start import decide_on_main
from distill.runinfo import RunRecord
from distill.stages.opd.args import cuda_available, make_trl_config, trl_kwargs, vllm_installed
from distill.stages.opd.config import OPDConfig
from distill.stages.opd.output import prepare_out, remove_checkpoints, save_student, train_fingerprint

log = logging.getLogger(__name__)


def run(cfg: OPDConfig) -> Path:
    check_inputs(cfg)
    out = Path(cfg.out)
    if should_relaunch(cfg.num_processes, cfg.accelerate_config):
        return relaunch_stage("opd", cfg, out, finished=lambda: prepare_out(cfg, out).done, cuda=cuda_available,
                              bf16=cfg.bf16 is not False)
    return train(cfg)


def check_inputs(cfg: OPDConfig) -> None:
    for name, what in (("student", "the model to train"), ("teacher", "the teacher"),
                       ("dataset", "the training problems")):
        if not getattr(cfg, name):
            raise DistillError(f"opd needs {what}: --{name} (or opd.{name} in the recipe)")
    require_folder(cfg.student, "student")
    if not cfg.teacher_server_url:
        require_folder(cfg.teacher, "teacher")


def train(cfg: OPDConfig) -> Path:
    """Train, watch and save (in-process; under ``accelerate launch`` every rank runs this)."""
    from distill.stages.opd.data import prepare

    check_inputs(cfg)
    out = Path(cfg.out)
    tokenizer = load_tokenizers(cfg)               # a teacher of another vocabulary is refused before TRL loads
    kwargs = trl_kwargs(cfg, cuda=cuda_available(), have_vllm=vllm_installed())
    args = make_trl_config(kwargs)                 # also sets up the process group under accelerate
    main_process = args.process_index == 0
    start = decide_on_main(lambda: prepare_out(cfg, out), process_index=args.process_index,
                           world_size=args.world_size)
    if start.done:
        return out
    resume_from = start.checkpoint
    data = prepare(cfg, tokenizer)
    record = RunRecord("opd", cfg, inputs={k: v for k, v in (("student", cfg.student), ("teacher", cfg.teacher),
                                                                ("dataset", cfg.dataset),
                                                                ("offpolicy_dataset", cfg.offpolicy_dataset))
                                           if v and Path(v).exists()})
    record.counts.update(data.counts())
    record.extra.update({
        "train_fingerprint": train_fingerprint(cfg), "student": cfg.student, "teacher": cfg.teacher,
        "teacher_server_url": cfg.teacher_server_url, "problems_digest": data.problems_digest,
        "trainer": "trl.experimental.iw_opd.IWOPDTrainer (distillation_objective=jsd)",
        "divergence": _divergence_name(cfg.beta), "sampling": "vllm" if kwargs["use_vllm"] else "transformers",
        "world_size": args.world_size, "resumed_from": str(resume_from) if resume_from else None,
        "dropped_examples": {reason: ids[:20] for reason, ids in data.dropped.items()}})
    if main_process:
        record.write(out, status="partial")
    trainer, stop = _build_trainer(cfg, args, tokenizer, data, out, record)
    record.extra["sharding"] = sharding_of(trainer.accelerator)
    record.extra["teacher_held"] = trainer.teacher_held       # served, whole, or sharded as the student is
    started = time.time()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    steps = record.counts["steps"] = trainer.state.global_step
    if stop.requested:
        if main_process:
            record.write(out, status="partial")
            print(f"opd: stopped after step {steps}; checkpoint saved in {out / 'checkpoints'}. Rerun the same "
                  "command to continue from it.")
        raise KeyboardInterrupt
    if steps == 0:
        if main_process:
            record.write(out, status="failed")
        raise DistillError(f"opd trained 0 steps: {len(data.rows)} problems do not fill one batch of "
                           f"{args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size}"
                           " prompts; add problems or lower per_device_train_batch_size")
    save_student(trainer, tokenizer, cfg.student, out, main_process=main_process, bf16=bool(kwargs["bf16"]))
    if main_process:
        _summarise(record, out, time.time() - started)
        if not cfg.keep_checkpoints:
            remove_checkpoints(out)
        record.write(out, status="complete")
        _print_summary(record, out)
    return out


def _divergence_name(beta: float) -> str:
    return {1.0: "reverse KL(student || teacher)", 0.0: "forward KL(teacher || student)"}.get(
        beta, f"generalized JSD (beta {beta})")


def load_tokenizers(cfg: OPDConfig) -> Any:
    """The student's tokenizer (it renders the prompts), after checking the teacher's has the same vocabulary."""
    from transformers import AutoTokenizer

    def load(name: str, role: str) -> Any:
        try:
            return AutoTokenizer.from_pretrained(name, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise DistillError(f"could not load the {role}'s tokenizer from {name!r}: {' '.join(str(exc).split())}") \
                from None

    student = load(cfg.student, "student")
    check_same_vocabulary(student, load(cfg.teacher, "teacher"), cfg.student, cfg.teacher)
    if not getattr(student, "chat_template", None):
        raise DistillError(f"{cfg.student}: the student's tokenizer has no chat template; opd prompts with the chat "
                           "format the student was trained on (a 'distill sft' student carries one)")
    if student.pad_token is None:
        student.pad_token = student.eos_token
    return student


def check_same_vocabulary(student_tok: Any, teacher_tok: Any, student: str, teacher: str) -> None:
    """Refuse (one line) a teacher whose token ids mean other strings than the student's: the divergence is taken
    id by id over the two next-token distributions."""
    s, t = student_tok.get_vocab(), teacher_tok.get_vocab()
    if s == t:
        return
    s_by_id = {i: tok for tok, i in s.items()}
    t_by_id = {i: tok for tok, i in t.items()}
    first = min(i for i in set(s_by_id) | set(t_by_id) if s_by_id.get(i) != t_by_id.get(i))
    raise DistillError(
        f"student {student} and teacher {teacher} do not share a vocabulary ({len(s)} vs {len(t)} tokens; id {first} "
        f"is {s_by_id.get(first)!r} for the student and {t_by_id.get(first)!r} for the teacher): on-policy "
        "distillation compares their next-token distributions id by id, so the teacher must use the student's "
        "tokenizer. Pick a teacher of the student's family, or distill across tokenizers with 'distill generate' + "
        "'distill sft'")


def _scorer(cfg: OPDConfig) -> Any:
    from distill.rewards import make_accuracy_reward
    from distill.verify import VerifySettings

    reward = make_accuracy_reward(VerifySettings(mode=cfg.verify_mode, workers=0))

    def score(completions: list[str], golds: list[str | None]) -> list[float | None]:
        return reward(completions, answer=golds)

    return score


def _build_trainer(cfg: OPDConfig, args: Any, tokenizer: Any, data: Any, out: Path, record: RunRecord) -> Any:
    import datasets
    from transformers import ProgressCallback as HFProgress

    from distill.stages.opd.callbacks import MetricsCallback, ProgressCallback
    from distill.stages.opd.trainer import OPDTrainer
    from distill.training_stop import GracefulStop, OnSave

    stop = GracefulStop()

    def refresh_run_json(step: int) -> None:
        record.counts["steps"] = step
        record.write(out, status="partial")

    callbacks = [MetricsCallback(out, plot_every=cfg.plot_every), ProgressCallback(), stop, OnSave(refresh_run_json)]
    try:
        trainer = OPDTrainer(model=cfg.student, teacher_model=None if cfg.teacher_server_url else cfg.teacher,
                             args=args, train_dataset=datasets.Dataset.from_list(data.rows),
                             processing_class=tokenizer, callbacks=callbacks, golds=data.golds,
                             scorer=_scorer(cfg) if data.golds else None)
    except OSError as exc:
        raise DistillError(f"could not load the student or the teacher: {' '.join(str(exc).split())}") from None
    trainer.remove_callback(HFProgress)
    return trainer, stop


def _summarise(record: RunRecord, out: Path, wall: float) -> None:
    from distill.data.jsonl import read_jsonl
    from distill.stages.opd.callbacks import METRICS_FILE

    rows = read_jsonl(out / METRICS_FILE) if (out / METRICS_FILE).is_file() else []
    c = record.counts
    c["train_wall_s"] = round(wall, 1)
    window = max(1, min(10, len(rows) // 2))
    for key in ("loss", "logprob_gap", "student_logprob", "teacher_logprob", "accuracy", "completion_length"):
        first = [r[key] for r in rows[:window] if r.get(key) is not None]
        last = [r[key] for r in rows[-window:] if r.get(key) is not None]
        if first and last:
            c[f"{key}_first{window}"] = round(sum(first) / len(first), 4)
            c[f"{key}_last{window}"] = round(sum(last) / len(last), 4)


def _print_summary(record: RunRecord, out: Path) -> None:
    c = record.counts
    lines = [f"opd: {c.get('steps', 0)} steps on {c['train_problems']} problems in {c['train_wall_s'] / 60:.1f} min "
             f"({record.extra['divergence']}, student samples with {record.extra['sampling']})"]
    for key, label in (("loss", "divergence (loss)"), ("logprob_gap", "student - teacher log-prob of samples"),
                       ("accuracy", "accuracy of the samples"), ("completion_length", "mean sample tokens")):
        first = next((v for k, v in c.items() if k.startswith(f"{key}_first")), None)
        last = next((v for k, v in c.items() if k.startswith(f"{key}_last")), None)
        if first is not None and last is not None:
            lines.append(f"  {label}: {first:.4g} -> {last:.4g} (first vs last steps)")
    lines.append(f"  model: {out}  (distill eval --model {out})")
    lines.append(f"  watch: {out / 'metrics.jsonl'}, {out / 'plots'}")
    print("\n".join(lines))
