"""The pieces of ``distill filter`` on their own: dedup, selection, the n-gram index (with the real eval
files when present), and the parallel row filters agreeing with the serial ones."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from distill.errors import DataError, DistillError
from distill.stages.filter.apply import run_row_filters
from distill.stages.filter.config import FilterConfig
from distill.stages.filter.decontaminate import NgramIndex, build_index
from distill.stages.filter.dedup import duplicates
from distill.stages.filter.rules import FilterContext, enabled_row_filters
from distill.stages.filter.selection import selected
from distill.stages.filter.trace import prepare


def T(index: int, pid: str, text: str = "", num_tokens: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(index=index, id=pid, assistant_text=text, num_tokens=num_tokens)


# ---------------------------------------------------------------- dedup


def test_dedup_exact_and_normalised_within_a_problem_only():
    rows = [
        T(0, "a", "<think>\nx + y\n</think>\n\nSo 3."),
        T(1, "a", "<think>\nx + y\n</think>\n\nSo 3."),
        T(2, "a", "<think>\nX  +\ty\n</think>\n\nso 3."),
        T(3, "a", "<think>\nx + z\n</think>\n\nSo 3."),
        T(4, "b", "<think>\nx + y\n</think>\n\nSo 3."),
        T(5, "b", "<THINK>\nx + y\n</THINK>\n\nSO 3."),
    ]
    assert duplicates(rows) == {1: "exact", 2: "normalized", 5: "normalized"}


def test_dedup_keeps_the_first_occurrence():
    rows = [T(7, "a", "same"), T(3, "a", "same")]
    assert duplicates(rows) == {3: "exact"}


# ---------------------------------------------------------------- selection


def _group() -> list[SimpleNamespace]:
    lengths = {"a": [50, 10, 30, 10, 40], "b": [5, 6]}
    rows, i = [], 0
    for pid, ls in lengths.items():
        for n in ls:
            rows.append(T(i, pid, num_tokens=n))
            i += 1
    return rows


def test_selection_shortest_breaks_ties_by_input_order():
    assert selected(_group(), "shortest", 1) == {1, 5}
    assert selected(_group(), "shortest", 3) == {1, 3, 2, 5, 6}


def test_selection_shortest_falls_back_to_characters():
    rows = [T(0, "a", "x" * 9), T(1, "a", "x" * 3), T(2, "a", "x" * 5)]
    assert selected(rows, "shortest", 2) == {1, 2}


def test_selection_random_is_seeded_and_per_problem():
    rows = _group()
    picks = {frozenset(selected(rows, "random", 2, seed=s)) for s in range(20)}
    assert len(picks) > 1  # the seed matters
    assert selected(rows, "random", 2, seed=4) == selected(rows, "random", 2, seed=4)
    for pick in picks:
        assert len([i for i in pick if i < 5]) == 2 and {5, 6} <= pick  # k per problem; small groups whole
    # One problem's draw does not depend on the others being there.
    only_a = [r for r in rows if r.id == "a"]
    assert selected(only_a, "random", 2, seed=4) == {i for i in selected(rows, "random", 2, seed=4) if i < 5}


def test_selection_all_and_bad_arguments():
    assert selected(_group(), "all", 1) == set(range(7))
    with pytest.raises(ValueError, match="mode"):
        selected(_group(), "longest", 1)
    with pytest.raises(ValueError, match="k must be"):
        selected(_group(), "random", 0)


# ---------------------------------------------------------------- decontamination


def test_ngram_index_normalises_case_spacing_and_latex():
    index = NgramIndex(n=8)
    index.add("Let $ABC$ be a triangle with $AB = 13$, $BC = 14$ and $CA = 15$. Find its area.", "e#1")
    index.add("Simplify $\\sqrt{242}$.", "e#2")  # shorter than n words: matched whole
    assert index.find("let abc be a TRIANGLE with ab=13, bc=14 and ca = 15; compute the inradius") == "e#1"
    assert index.find("First, simplify \\sqrt{242} and then add one.") == "e#2"
    assert index.find("Let $ABC$ be a square with side 13.") is None
    assert index.find("Simplify $\\sqrt{243}$.") is None
    assert index.find("") is None and index.find(None) is None


def test_build_index_from_a_crafted_file_and_its_errors(tmp_path):
    good = tmp_path / "eval.jsonl"
    good.write_text(
        json.dumps(
            {
                "question": "How many positive divisors does the number two thousand "
                "and twenty four have in total?"
            }
        )
        + "\n"
    )
    index, sets = build_index([str(good)], 8)
    assert [(s.source, s.problems) for s in sets] == [(str(good), 1)]
    assert index.find("Q: how many positive divisors does the number two thousand and twenty four have?")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "no problem column here"}) + "\n")
    with pytest.raises(DistillError, match="problem") as err:
        build_index([str(good), str(bad)], 8)
    assert "--decontaminate-files" in str(err.value) and "--no-decontaminate" in str(err.value)


def test_real_eval_files_are_indexed_and_matched(shared_data):
    files = [
        shared_data / "aime24" / "test.jsonl",
        shared_data / "aime25" / "test.jsonl",
        shared_data / "math500" / "test.jsonl",
    ]
    index, sets = build_index([str(f) for f in files], 8)
    assert [s.problems for s in sets] == [30, 30, 500]
    aime24 = [json.loads(x) for x in files[0].read_text().splitlines()]
    aime25 = [json.loads(x) for x in files[1].read_text().splitlines()]
    math500 = [json.loads(x) for x in files[2].read_text().splitlines()]
    # A copy with a different ending still matches (most of its n-grams); one shared opening sentence does not.
    head = " ".join(aime24[0]["problem"].split()[: len(aime24[0]["problem"].split()) * 2 // 3])
    assert index.find(f"Problem: {head} ... and then something else entirely.").startswith(str(files[0]))
    first_words = " ".join(aime24[0]["problem"].split()[:12])
    assert index.find(f"Problem: {first_words} ... and then something else entirely.") is None
    assert index.find(aime25[5]["problem"].upper()) == f"{files[1]}#{aime25[5]['id']}"
    assert index.find(math500[100]["problem"]).startswith(str(files[2]))
    # Every eval problem matches itself; fresh problems do not.
    assert all(index.find(r["problem"]) for r in aime24 + aime25 + math500)
    fresh = [f"What is {a} + {b}?" for a in range(10, 60) for b in range(100, 140)]
    fresh += ["A farmer has 17 sheep and buys 5 more each week; after how many weeks does he have 102 sheep?"]
    assert [p for p in fresh if index.find(p)] == []


def test_real_eval_files_through_the_stage(shared_data, tmp_path):
    from distill.stages.filter.stage import run

    math500 = [json.loads(x) for x in (shared_data / "math500" / "test.jsonl").read_text().splitlines()]
    body = "<think>\nWe compute it step by step and check it.\n</think>\n\nSo $\\boxed{1}$."
    rows = [
        {
            "id": "leak",
            "sample": 0,
            "problem": math500[7]["problem"],
            "completion": body,
            "gold": "1",
            "verdict": "correct",
            "finish_reason": "stop",
            "completion_tokens": 30,
        },
        {
            "id": "fresh",
            "sample": 0,
            "problem": "What is 1 + 0?",
            "completion": body,
            "gold": "1",
            "verdict": "correct",
            "finish_reason": "stop",
            "completion_tokens": 30,
        },
    ]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "shard-00000-of-00001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = [str(shared_data / d / "test.jsonl") for d in ("aime24", "aime25", "math500")]
    run(FilterConfig(traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), decontaminate_files=files, workers=1))
    stats = json.loads((tmp_path / "o" / "filter_stats.json").read_text())
    assert stats["rows_kept"] == 1
    assert stats["decontamination"]["contaminated_problems"] == {"leak": f"{files[2]}#{math500[7]['unique_id']}"}


def test_missing_eval_file_is_named(tmp_path):
    with pytest.raises(DistillError, match="nope.jsonl"):
        build_index([str(tmp_path / "nope.jsonl")], 8)
    with pytest.raises(DataError):
        from distill.stages.filter.decontaminate import _load_texts

        _load_texts(str(tmp_path / "nope.jsonl"))


# ---------------------------------------------------------------- parallel row filters


def test_parallel_row_filters_agree_with_serial(tmp_path):
    texts = [
        "<think>\nWe add the numbers and check.\n</think>\n\nSo $\\boxed{4}$.",
        "<think>\nwait let me check " * 30 + "\n</think>\n\nSo $\\boxed{4}$.",
        "<think>\n我们先把两个数相加。\n</think>\n\n$\\boxed{4}$",
        "<think>\nunfinished reasoning",
    ]
    rows = [
        {
            "id": f"p{i % 37}",
            "sample": i,
            "problem": f"Problem number {i % 37}?",
            "completion": texts[i % 4],
            "verdict": ["correct", "incorrect", "correct"][i % 3],
            "gold": "4",
            "finish_reason": "stop",
            "completion_tokens": 10 + i % 50,
        }
        for i in range(800)
    ]
    traces = [prepare(r, index=i, folder="f") for i, r in enumerate(rows)]
    for t in traces:
        t.num_tokens = t.completion_tokens
    index = NgramIndex(n=3)
    index.add("Problem number 5", "e#5")
    cfg = FilterConfig(max_tokens=40)
    ctx = FilterContext(cfg, index)
    names = enabled_row_filters(cfg)
    serial, s_secs, s_workers = run_row_filters(traces, ctx, names, workers=1, progress=False)
    parallel, p_secs, p_workers = run_row_filters(traces, ctx, names, workers=2, progress=False)
    assert (s_workers, p_workers) == (1, 2)
    assert parallel == serial
    assert {f.split(":")[0] for fs in serial for f in fs} == {
        "decontamination",
        "completeness",
        "correctness",
        "readability",
        "length",
    }
    assert set(p_secs) == set(names) and all(v >= 0 for v in p_secs.values())


# ---------------------------------------------------------------- shortcuts and trace parsing


@pytest.mark.parametrize("text", [
    "Let $x = 2$, so the answer is 4.",
    "We compute \\frac{1}{2} + x_i and CHECK it: a b c d.",
    "",
    "12 + 34 = 46 -> 6",
    "wait let me check " * 20,
])
def test_ascii_english_reads_english(text):
    from distill.verify.language import paragraph_consistency

    assert paragraph_consistency(text, "en") == (1.0, 1.0)
    assert paragraph_consistency(text, "auto", problem="What is 2+2?") == (1.0, 1.0)


def test_ascii_is_not_english_by_itself():
    # The filter used to read every ASCII text as English (Latin script): Spanish without accents passed.
    from distill.verify.language import paragraph_consistency

    spanish = "Entonces el resultado es ocho porque la suma de los dos numeros es dieciseis."
    assert paragraph_consistency(spanish, "en")[0] == 0.0
    assert paragraph_consistency(spanish, "es") == (1.0, 1.0)
    assert paragraph_consistency("We compute 面积 then divide by π ≈ 3.14", "en")[0] == pytest.approx(5 / 7)


def test_chat_prompt_with_prefilled_think_and_generator_split():
    prompt = [{"role": "user", "content": "What is 2+2?\nPlease reason step by step."},
              {"role": "assistant", "content": "<think>\n"}]
    t = prepare({"id": "a", "sample": 0, "prompt": prompt, "completion": "two and two\n</think>\n\n$\\boxed{4}$"},
                index=0, folder="f", user_turn="prompt")
    assert t.prompt_has_think and t.reasoning == "two and two" and t.answer == "$\\boxed{4}$"
    assert t.user == "What is 2+2?\nPlease reason step by step." and t.problem == t.user
    # A completion without tags whose reasoning the generator stored separately (a reasoning parser).
    t2 = prepare({"id": "a", "sample": 1, "problem": "2+2?", "completion": "So $\\boxed{4}$.",
                  "reasoning": "two and two", "answer_text": "So $\\boxed{4}$."}, index=1, folder="f")
    assert t2.closed and t2.assistant_text == "<think>\ntwo and two\n</think>\n\nSo $\\boxed{4}$."
    # Verdicts may come as the Verdict dict.
    t3 = prepare({"id": "a", "sample": 2, "problem": "q", "completion": "x", "verdict": {"status": "correct"}},
                 index=2, folder="f")
    assert t3.verdict == "correct"
