"""Config of ``distill card``: MODEL_CARDS/<student>.md from the registry, run.json files and eval results."""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import option
from distill.students import STUDENTS

# The paper's six distilled students: what `--student all` writes.
PAPER_STUDENTS = [name for name, s in STUDENTS.items() if s.paper_aime24 is not None]


@dataclass
class CardConfig:
    student: str = option("", f"student name ({', '.join(STUDENTS)}), or 'all' for the paper's six")
    sft_dir: str | None = option(None, "folder of the student's `distill sft` run; its run.json starts the lineage "
                                       "(default: found through the eval runs' model, or RUNS/<student>, "
                                       "RUNS/sft/<student>)")
    eval_dir: list[str] = option([], "`distill eval` output folders, or folders of them (default: "
                                     "RUNS/eval/<student>)")
    runs: str = option("out", "root of the default places searched for runs (RUNS above)")
    out: str = option("MODEL_CARDS", "folder the card is written to, as <out>/<student>.md")
    recipes: str = option("recipes/students", "folder of the students' SFT recipes (<student>.yaml)")

    def __post_init__(self) -> None:
        if self.student and self.student != "all" and self.student not in STUDENTS:
            raise ValueError(f"unknown student {self.student!r}. Valid students: {', '.join(STUDENTS)}, or 'all'")
        if self.student == "all" and (self.sft_dir or self.eval_dir):
            raise ValueError("--sft-dir and --eval-dir belong to one student: pass --student NAME with them")
