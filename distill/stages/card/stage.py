"""``distill card``: write ``MODEL_CARDS/<student>.md`` from what is on disk, beside the paper's numbers.

Sources: the student registry (``distill.students``: base model, shape, the paper's AIME 2024 numbers), the
student's recipe (``recipes/students/<student>.yaml``), the ``run.json`` chain from its SFT run upstream
(sft -> filtered dataset -> traces), and ``distill eval`` results. The card states plainly which numbers
were measured here and which are quoted from the paper; with no eval results it says "not measured yet".
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import ConfigError
from distill.runinfo import RUN_FILE
from distill.stages.card.config import PAPER_STUDENTS, CardConfig
from distill.stages.card.lineage import EvalRun, RunNode, find_evals, trace_lineage
from distill.stages.card.model_card import render_card
from distill.students import STUDENTS, get_student


def _sft_chain(cfg: CardConfig, name: str, evals: list[EvalRun]) -> tuple[RunNode | None, list[str]]:
    """The lineage start: --sft-dir, else the folder an eval ran on (if it has a run.json), else RUNS/..."""
    if cfg.sft_dir:
        chain = trace_lineage(cfg.sft_dir)
        if chain is None:
            raise ConfigError(f"--sft-dir {cfg.sft_dir}: {_no_run_why(Path(cfg.sft_dir))}; pass the folder "
                              "'distill sft' wrote for this student (it holds its run.json)")
        return chain, [cfg.sft_dir]
    searched = []
    for run in evals:
        model = (run.record.get("inputs") or {}).get("model") or {}
        path = model.get("path") if isinstance(model, dict) else None
        if path and (Path(path) / RUN_FILE).is_file():
            return trace_lineage(path), [path]
    for cand in (Path(cfg.runs) / name, Path(cfg.runs) / "sft" / name):
        searched.append(str(cand))
        chain = trace_lineage(cand)
        if chain is not None:
            return chain, searched
    return None, searched


def _no_run_why(folder: Path) -> str:
    if not folder.is_dir():
        return "no such folder"
    if not (folder / RUN_FILE).is_file():
        return f"no {RUN_FILE} in it"
    return f"its {RUN_FILE} is not a run record (not a readable JSON object)"


def _evaluated_model(run: EvalRun) -> str | None:
    model = (run.record.get("inputs") or {}).get("model")
    if isinstance(model, dict) and model.get("path"):
        return str(model["path"])
    config = run.record.get("config")
    return str(config["model"]) if isinstance(config, dict) and config.get("model") else None


def _same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def check_attribution(name: str, chain: RunNode | None, evals: list[EvalRun]) -> None:
    """Refuse runs that do not belong to student ``name``: an SFT run of another student (or not an SFT run), and
    evals of anything but that SFT run's model (the card would print someone else's numbers as this student's)."""
    if chain is not None:
        if chain.stage != "sft":
            raise ConfigError(f"{chain.folder} holds a 'distill {chain.stage}' run, not a student's 'distill sft' "
                              "run: pass the student's SFT output folder as --sft-dir")
        config = chain.record.get("config")
        trained = config.get("student") if isinstance(config, dict) else None
        if trained != name:
            raise ConfigError(f"{chain.folder} is the SFT run of student {trained!r}, not {name!r}: pass --student "
                              f"{trained} or the {name} run's own folder as --sft-dir")
    for run in evals:
        model = _evaluated_model(run)
        if model is None:
            raise ConfigError(f"{run.folder}: this eval scored a completions file, so nothing ties it to student "
                              f"{name!r}; evaluate the student's model folder with 'distill eval --model DIR'")
        if chain is None:
            raise ConfigError(f"{run.folder} evaluated {model}, which has no 'distill sft' run of {name!r}: pass the "
                              "student's SFT folder as --sft-dir, or leave this eval out")
        if not _same_folder(model, chain.folder):
            raise ConfigError(f"{run.folder} evaluated {model}, not the student in {chain.folder}: pass only evals "
                              "of this student's model")


def write_card(cfg: CardConfig, name: str) -> Path:
    student = get_student(name)
    eval_dirs = cfg.eval_dir or [str(Path(cfg.runs) / "eval" / name)]
    evals = find_evals(eval_dirs)
    chain, searched = _sft_chain(cfg, name, evals)
    check_attribution(name, chain, evals)
    recipe = Path(cfg.recipes) / f"{name}.yaml"
    text = render_card(student, chain=chain, evals=evals, recipe=recipe if recipe.is_file() else None,
                       searched=searched)
    out = Path(cfg.out)
    path = out / f"{name}.md"
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write {path.name} there ({exc.strerror or exc}); choose a writable "
                          "folder") from None
    stages = " -> ".join(node.stage for _, node in chain.flatten()) if chain else "no runs found"
    measured = ", ".join(sorted({e.task for e in evals})) or "nothing measured yet"
    print(f"{path}: lineage {stages}; measured: {measured}")
    return path


def run(cfg: CardConfig) -> list[Path]:
    if not cfg.student:
        raise ConfigError(f"pass --student NAME: one of {', '.join(STUDENTS)}, or 'all'")
    names = PAPER_STUDENTS if cfg.student == "all" else [cfg.student]
    return [write_card(cfg, name) for name in names]
