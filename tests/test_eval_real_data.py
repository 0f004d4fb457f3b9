"""The real AIME 2024 / AIME 2025 / MATH-500 files (../shared/data): ids, zero-padded golds, re-scoring all 30."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.stages.evaluate.hooks import load_docs


@pytest.fixture(scope="module")
def aime24(shared_data):
    path = shared_data / "aime24" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return path, rows


def test_real_files_load_as_docs_with_their_ids(shared_data, aime24):
    path, rows = aime24
    docs = load_docs("aime24", str(path))
    assert len(docs) == 30 and [d["id"] for d in docs] == [str(r["id"]) for r in rows]
    assert sum(d["answer"].startswith("0") for d in docs) == 7            # "025", "073", ... kept as given
    aime25 = load_docs("aime25", str(shared_data / "aime25" / "test.jsonl"))
    assert len(aime25) == 30 and aime25[0]["id"] == "I-1"
    math500 = load_docs("math500", str(shared_data / "math500" / "test.jsonl"))
    assert len(math500) == 500 and math500[0]["id"] == "test/precalculus/807.json"
    assert math500[0]["verify_mode"] == "math"


def test_thirty_real_problems_rescore_exactly(aime24, tmp_path):
    """Each problem gets 4 completions whose verdicts follow from the gold alone.

    Samples: the gold as a plain integer (for "025": 25) and the gold as written ("025") -- both right --, then
    gold + 1, then another gold + 1 (even rows: a 2-2 tie that the earlier group, the right one, wins) or no box
    (odd rows, which also swap samples 0 and 2 so a wrong answer comes first). The first three problems get four
    wrong answers instead, so cons@4 and pass@4 are not trivially 1.
    """
    path, rows = aime24
    lines, expected_cons = [], []
    for i, row in enumerate(rows):
        gold = int(row["answer"])
        wrong = (gold + 1) % 1000
        comps = [f"<think>work</think>The answer is $\\boxed{{{gold}}}$.",
                 f"<think>work</think>$\\boxed{{{row['answer']}}}$",
                 f"<think>work</think>$\\boxed{{{wrong}}}$",
                 f"<think>work</think>$\\boxed{{{wrong}}}$" if i % 2 == 0 else "<think>work</think>no idea"]
        if i % 2:
            comps[0], comps[2] = comps[2], comps[0]
        expected_cons.append(True)
        lines.append(json.dumps({"id": row["id"], "completions": comps}))
    for i in (0, 1, 2):
        obj = json.loads(lines[i])
        wrong = (int(rows[i]["answer"]) + 1) % 1000
        obj["completions"] = [f"<think>w</think>\\boxed{{{wrong}}}"] * 4
        lines[i] = json.dumps(obj)
        expected_cons[i] = False
    f = tmp_path / "completions.jsonl"
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["eval", "--task", "aime24", "--data-file", str(path), "--completions", str(f), "--out", str(out)]) == 0

    results = json.loads((out / "results.json").read_text())
    assert (results["n"], results["num_problems"], results["complete"]) == (4, 30, True)
    assert results["pass@1"] == pytest.approx((27 * 2 / 4) / 30)
    assert results["cons@4"] == pytest.approx(sum(expected_cons) / 30)
    assert results["pass@4"] == pytest.approx(27 / 30)
    assert results["pass@2"] == pytest.approx(27 * (1 - 1 / 6) / 30)      # c=2 of 4: 1 - C(2,2)/C(4,2)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    golds = {str(r["id"]): r["answer"] for r in rows}
    for s in samples:       # right exactly when the extracted integer equals the gold integer
        assert s["correct"] == (s["extracted"] is not None and int(s["extracted"]) == int(golds[s["id"]]))
    padded = {i for i, g in golds.items() if g.startswith("0")} - {str(r["id"]) for r in rows[:3]}
    assert padded
    for pid in padded:      # "25" against the gold "025" is right, and so is "025"
        got = {s["extracted"] for s in samples if s["id"] == pid and s["correct"]}
        assert got == {golds[pid], str(int(golds[pid]))}
    by_id = {p["id"]: p for p in map(json.loads, (out / "problems.jsonl").read_text().splitlines())}
    assert all(by_id[str(r["id"])]["num_correct"] == 2 for r in rows[3:])
    assert all(by_id[str(r["id"])]["num_correct"] == 0 for r in rows[:3])
    assert [by_id[str(r["id"])]["gold"] for r in rows] == [r["answer"] for r in rows]
