"""Reasoning formats: <think>, Sky-T1's thought/solution tokens, s1's im_start think/answer, custom delimiters,
a separate reasoning_content; and the real Sky-T1 AIME 2024 traces (which close their thought, which are cut)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.verify import VerifySettings, verify_batch, verify_completion
from distill.verify.equivalence import answer_from_completion
from distill.verify.settings import SETTING_NAMES
from distill.verify.split import (
    REASONING_FORMATS,
    ThinkSplit,
    detect_format,
    split_reasoning,
    split_think,
    split_with_reasoning_content,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-traces"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason=f"real traces not found at {TRACES}")

SKY = "<|begin_of_thought|>\n\nSo 2+2 is \\boxed{5}? No, 4.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n" \
      "The sum is \\(\\boxed{4}\\).<|end_of_solution|>"
S1 = "<|im_start|>think\nTwo plus two is four.\n<|im_start|>answer\nAnswer: $\\boxed{4}$<|im_end|>"


def test_formats_listed() -> None:
    assert REASONING_FORMATS == ("auto", "think", "sky-t1", "s1", "custom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think>b", "think"),
        ("a</think>b", "think"),
        (SKY, "sky-t1"),
        ("thought cut <|end_of_thought|>", "sky-t1"),
        (S1, "s1"),
        ("plain \\boxed{1}", None),
        ("", None),
        ("<|begin_of_thought|> we could write <think> here", "sky-t1"),  # first marker wins
    ],
)
def test_detect_format(text: str, expected: str | None) -> None:
    assert detect_format(text) == expected


def test_sky_t1_split() -> None:
    parts = split_reasoning(SKY)
    assert parts.format == "sky-t1" and parts.finished and parts.has_think
    assert parts.reasoning == "So 2+2 is \\boxed{5}? No, 4."
    assert parts.answer == "The sum is \\(\\boxed{4}\\)."
    cut = split_reasoning("<|begin_of_thought|>\n\nLet me think about the ca")
    assert cut == ThinkSplit("Let me think about the ca", "", False, True) and cut.format == "sky-t1"
    # closed thought but the solution was cut: the answer is what there is of it
    partial = split_reasoning("<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>So \\boxed{4")
    assert partial.finished and partial.answer == "So \\boxed{4"
    # after the thought with no solution tokens: the rest is the answer
    assert split_reasoning("<|begin_of_thought|>t<|end_of_thought|> \\boxed{3}").answer == "\\boxed{3}"


def test_s1_split() -> None:
    parts = split_reasoning(S1)
    assert (parts.format, parts.reasoning, parts.answer) == ("s1", "Two plus two is four.", "Answer: $\\boxed{4}$")
    # s1's prompt ends with "<|im_start|>think": the completion has only the answer marker
    prefilled = split_reasoning("Two plus two.\n<|im_start|>answer\n4", prompt_has_think=True)
    assert prefilled.finished and prefilled.answer == "4" and prefilled.format == "s1"
    assert not split_reasoning("<|im_start|>think\nstill", "s1").finished


def test_custom_delimiters() -> None:
    parts = split_reasoning("<reasoning>r</reasoning> \\boxed{2}", "custom", custom=("<reasoning>", "</reasoning>"))
    assert (parts.reasoning, parts.answer, parts.format) == ("r", "\\boxed{2}", "custom")
    # an empty opening delimiter: the reasoning opens with the completion (prefilled)
    prefilled = split_reasoning("r ### \\boxed{2}", "custom", custom=("", "###"), prompt_has_think=True)
    assert (prefilled.reasoning, prefilled.answer) == ("r", "\\boxed{2}")
    with pytest.raises(ValueError, match="needs reasoning_delimiters"):
        split_reasoning("x", "custom")
    with pytest.raises(ValueError, match="only for reasoning_format 'custom'"):
        split_reasoning("x", "think", custom=("<r>", "</r>"))
    with pytest.raises(ValueError, match="reasoning_format must be one of"):
        split_reasoning("x", "deepseek")


def test_split_think_unchanged() -> None:
    assert split_think("<think> a </think> b ") == ThinkSplit("a", "b", True, True)
    assert split_think("<think> a </think> b ").format == "think"
    assert split_think("no tags").format is None
    # split_think ignores other formats' markers
    assert split_think(SKY).has_think is False
    # auto with no markers: no reasoning, or an unclosed one when the prompt opened it
    assert split_reasoning("plain").has_think is False
    assert split_reasoning("plain", prompt_has_think=True).finished is False


def test_reasoning_content() -> None:
    parts = split_with_reasoning_content("Two plus two is four.", "\\boxed{4}")
    assert (parts.reasoning, parts.answer, parts.finished, parts.format) == (
        "Two plus two is four.", "\\boxed{4}", True, "reasoning_content")
    assert split_with_reasoning_content("cut by length", "").finished is False
    assert split_with_reasoning_content(None, "\\boxed{4}") == ThinkSplit(None, "\\boxed{4}", True, False)
    assert split_with_reasoning_content("", SKY).format == "sky-t1"


def test_settings_fields() -> None:
    assert {"reasoning_format", "reasoning_delimiters"} <= set(SETTING_NAMES)
    settings = VerifySettings()
    assert (settings.reasoning_format, settings.reasoning_delimiters) == ("auto", None)
    custom = VerifySettings.from_options({"reasoning_format": "custom", "reasoning_delimiters": ["<r>", "</r>"]})
    assert custom.reasoning_delimiters == ("<r>", "</r>")
    with pytest.raises(ValueError, match="reasoning_format must be one of"):
        VerifySettings(reasoning_format="qwq")
    with pytest.raises(ValueError, match="needs reasoning_delimiters"):
        VerifySettings(reasoning_format="custom")
    with pytest.raises(ValueError, match="two strings"):
        VerifySettings(reasoning_format="custom", reasoning_delimiters=("<r>", ""))


# (id, completion, gold, expected, options): through verify_completion and verify_batch alike
# fmt: off
FORMAT_CASES: list[tuple[str, str, str, str, dict]] = [
    ("sky-closed", SKY, "4", "correct", {}),
    ("sky-answer-from-solution-not-thought", SKY, "5", "incorrect", {}),
    ("sky-cut", "<|begin_of_thought|> so it is \\boxed{4} and", "4", "unfinished", {}),
    ("sky-cut-optional", "<|begin_of_thought|> so it is \\boxed{4} and", "4", "correct", {"think": "optional"}),
    ("sky-box-only-in-thought",
     "<|begin_of_thought|>\\boxed{4}<|end_of_thought|><|begin_of_solution|>4<|end_of_solution|>", "4", "no_answer", {}),
    ("sky-explicit", SKY, "4", "correct", {"reasoning_format": "sky-t1"}),
    ("sky-read-as-think", SKY, "4", "correct", {"reasoning_format": "think"}),
    ("s1", S1, "4", "correct", {}),
    ("s1-cut", "<|im_start|>think\nso \\boxed{4}", "4", "unfinished", {}),
    ("custom", "<r>\\boxed{3}</r> so \\boxed{4}", "4", "correct",
     {"reasoning_format": "custom", "reasoning_delimiters": ["<r>", "</r>"]}),
    ("custom-cut", "<r>\\boxed{4}", "4", "unfinished",
     {"reasoning_format": "custom", "reasoning_delimiters": ["<r>", "</r>"]}),
    ("think-still-works", "<think>\\boxed{3}</think> \\boxed{4}", "4", "correct", {}),
    ("aime-sky", SKY.replace("{4}", "{004}"), "4", "correct", {"mode": "aime"}),
]
# fmt: on


@pytest.mark.parametrize(
    ("completion", "gold", "expected", "options"), [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES]
)
def test_format_case(completion: str, gold: str, expected: str, options: dict) -> None:
    options = dict(options)
    if "reasoning_delimiters" in options:
        options["reasoning_delimiters"] = tuple(options["reasoning_delimiters"])
    assert verify_completion(completion, gold, **options).status == expected
    [verdict] = verify_batch([completion], [gold], VerifySettings(workers=0, **options))
    assert verdict.status == expected


def test_messages_name_the_format_marker() -> None:
    assert answer_from_completion("<think>hmm")[2] == "no </think>: the reasoning never finished"
    assert answer_from_completion("<|begin_of_thought|>hmm")[2] == "no <|end_of_thought|>: the reasoning never finished"
    detail = answer_from_completion("<|begin_of_thought|>a<|end_of_thought|> none")[2]
    assert detail == "no boxed answer after <|end_of_thought|>"


# ---------------------------------------------------------------- the real Sky-T1 traces


def _rows(name: str) -> list[dict]:
    with open(TRACES / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@needs_traces
def test_real_sky_t1_rows_close_or_are_cut() -> None:
    """AIME 2024 by Sky-T1 checkpoints: 51 of 100 rows close their thought and answer in the solution block,
    49 never close it (cut by the length limit: 47k-154k characters, no solution block)."""
    rows = _rows("sky-t1-aime24.jsonl")
    assert len(rows) == 100
    splits = [split_reasoning(r["completion"]) for r in rows]
    assert {s.format for s in splits} == {"sky-t1"}
    closed = [i for i, s in enumerate(splits) if s.finished]
    cut = [i for i, s in enumerate(splits) if not s.finished]
    assert (len(closed), len(cut)) == (51, 49)
    assert all("<|begin_of_solution|>" not in rows[i]["completion"] for i in cut)
    assert all(len(rows[i]["completion"]) > 45_000 for i in cut)
    assert all("\\boxed" in splits[i].answer and "<|end_of_solution|>" not in splits[i].answer for i in closed)

    verdicts = verify_batch([r["completion"] for r in rows], [r["gold"] for r in rows], VerifySettings(workers=0))
    statuses = [v.status for v in verdicts]
    assert [i for i, s in enumerate(statuses) if s == "unfinished"] == cut
    assert statuses.count("correct") == 36 and statuses.count("incorrect") == 15
    # row 81 writes 392 in its thought and boxes 343 in its solution: the solution counts
    assert verdicts[81].extracted == "343"


@needs_traces
def test_real_r1_rows_split_on_prefilled_think() -> None:
    rows = _rows("r1-distill-math.jsonl")
    splits = [split_reasoning(r["completion"]) for r in rows]
    assert {s.format for s in splits} == {"think"}
    assert sum(s.finished for s in splits) == 144
    without_tag = [r["completion"].removeprefix("<think>\n") for r in rows]
    assert [split_reasoning(c, prompt_has_think=True).finished for c in without_tag] == [s.finished for s in splits]
