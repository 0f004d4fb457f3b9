"""Unit tests for distill.verify: splitting, extraction, verdicts, readability, and the worker pool."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from distill.verify import (
    STATUSES,
    ThinkSplit,
    Verdict,
    VerifyPool,
    VerifySettings,
    answers_equivalent,
    extract_answer,
    extract_boxed,
    has_code_block,
    is_mixed_language,
    language_consistency,
    longest_paragraph,
    normalize_aime,
    repetition_ratio,
    split_think,
    verify_answer,
    verify_batch,
    verify_completion,
)
from distill.verify.pool import shared_pool

# math-verify evaluates this power tower exactly: hours of CPU and gigabytes if nobody stops it.
POWER_TOWER = r"\boxed{9^{9^{9^{9}}}}"
BOUND = 1.0  # seconds: the per-item timeout used in the timeout tests


# ---------------------------------------------------------------- import cost


def test_import_is_light() -> None:
    code = (
        "import sys, distill.verify, distill.metrics, distill.rewards; "
        "print('sympy' in sys.modules, 'math_verify' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- split_think


def test_split_think_forms() -> None:
    assert split_think("<think> a </think> b ") == ThinkSplit("a", "b", True, True)
    assert split_think("no tags") == ThinkSplit(None, "no tags", True, False)
    assert split_think("<think> still going") == ThinkSplit("still going", "", False, True)
    assert split_think("prefilled </think> ans", prompt_has_think=True) == ThinkSplit(
        "prefilled", "ans", True, True
    )
    assert split_think("prefilled, unfinished", prompt_has_think=True).finished is False
    # the first </think> ends the reasoning (vLLM's deepseek_r1 parser does the same)
    assert split_think("<think>a</think>b</think>c").answer == "b</think>c"
    assert split_think("").answer == ""


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{1} and \boxed{2}", "2"),
        (r"\boxed{\frac{a}{\sqrt{b}}}", r"\frac{a}{\sqrt{b}}"),
        (r"\fbox{7}", "7"),
        (r"\boxed {8}", "8"),
        (r"$\boxed 5$", "5"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{a \\ b}", r"a \\ b"),
        (r"\boxed{3", None),
        (r"\boxed{1} \boxed{2", None),
        (r"\boxed", None),
        ("nothing here", None),
        ("", None),
        (r"\boxedx{3}", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


def test_extract_boxed_is_linear_on_huge_text() -> None:
    text = "{" * 100_000 + r"\boxed{42}" + "}" * 100_000
    start = time.perf_counter()
    assert extract_boxed(text) == "42"
    assert time.perf_counter() - start < 1.0


def test_extract_answer_sources_and_fallback() -> None:
    assert extract_answer(r"$\boxed{\dfrac{1}{2}}$.") == r"\dfrac{1}{2}"
    assert extract_answer("<answer> $x=3$ </answer>") == "x=3"
    assert extract_answer("<answer>1</answer> then <answer>2</answer>") == "2"
    assert extract_answer(r"<answer>\boxed{4}</answer>") == "4"
    assert extract_answer("The final answer is $\\frac{3}{4}$. I hope") is None
    assert extract_answer("The final answer is $\\frac{3}{4}$. I hope", fallback=True) == r"\frac{3}{4}"
    assert extract_answer("Answer: 12", fallback=True) == "12"
    assert extract_answer("**Answer:** 12", fallback=True) == "12"
    assert extract_answer("the answer is 12, since", fallback=True, mode="aime") == "12"
    assert extract_answer("we answer the question", fallback=True) is None
    assert extract_answer(r"\boxed{\text{(B)}}") == "(B)"
    with pytest.raises(ValueError, match="mode"):
        extract_answer("x", mode="gsm8k")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("025", "25"),
        ("0", "0"),
        ("000", "0"),
        ("999", "999"),
        ("1000", None),
        ("-1", None),
        ("2.5", None),
        ("25.00", "25"),
        (r"\boxed{073}", "73"),
        ("$80$", "80"),
        (r"\text{ 33 }", "33"),
        ("x = 7", "7"),
        ("m + n = 809", "809"),
        ("2 + 3 = 5", None),
        (r"7^\circ", "7"),
        ("seven", None),
        ("", None),
        (None, None),
        (r"\frac{14}{2}", None),
    ],
)
def test_normalize_aime(raw: str | None, expected: str | None) -> None:
    assert normalize_aime(raw) == expected


# ---------------------------------------------------------------- verdicts and single checks


def test_verdict_shape() -> None:
    v = Verdict("incorrect", "3", "4", "why", seconds=0.1)
    assert not v.correct
    assert v.to_dict() == {
        "status": "incorrect",
        "extracted": "3",
        "gold": "4",
        "detail": "why",
        "seconds": 0.1,
    }
    assert v == Verdict("incorrect", "3", "4", "why")  # timing is not part of equality
    with pytest.raises(ValueError, match="status"):
        Verdict("maybe", None, "1")
    with pytest.raises(AttributeError):
        v.status = "correct"  # type: ignore[misc]
    assert set(STATUSES) == {"correct", "incorrect", "no_answer", "unfinished", "unparsable", "timeout"}


def test_verify_answer_and_errors() -> None:
    assert verify_answer("0.5", r"\frac{1}{2}").correct
    assert verify_answer(None, "1").status == "no_answer"
    assert verify_answer("  ", "1").status == "no_answer"
    assert verify_answer("abc", "5", mode="aime").status == "incorrect"
    with pytest.raises(ValueError, match="not an integer from 0 to 999"):
        verify_answer("1", r"\frac{1}{2}", mode="aime")
    with pytest.raises(ValueError, match="non-empty"):
        verify_answer("1", "")
    with pytest.raises(ValueError, match="mode"):
        verify_answer("1", "1", mode="other")
    with pytest.raises(ValueError, match="think"):
        verify_completion("x", "1", think="sometimes")


def test_answers_equivalent_is_symmetric() -> None:
    assert answers_equivalent("025", "25", mode="aime")
    assert not answers_equivalent("025", "26", mode="aime")
    assert answers_equivalent("abc", " abc", mode="aime")
    for a, b in [(r"\frac{1}{2}", "0.5"), ("x+1", "1+x"), (r"\{1,2\}", r"\{2,1\}")]:
        assert answers_equivalent(a, b) and answers_equivalent(b, a)
    assert not answers_equivalent("2", "3")
    assert not answers_equivalent(POWER_TOWER, "3", timeout=BOUND)


def test_in_process_timeout_on_main_thread() -> None:
    start = time.monotonic()
    verdict = verify_completion(POWER_TOWER, "5", timeout=BOUND)
    assert verdict.status == "timeout"
    assert time.monotonic() - start < BOUND + 1.0


# ---------------------------------------------------------------- the worker pool


def _warm(workers: int = 2) -> None:
    """Start the shared workers so timing assertions measure the timeout, not process start-up."""
    verify_batch([r"\boxed{1}"] * workers, [r"\frac22", r"\frac33"][:workers], VerifySettings(workers=workers))


def test_pool_times_out_a_pathological_item_and_carries_on() -> None:
    _warm()
    completions = [POWER_TOWER, r"\boxed{0.5}", r"\boxed{2}", r"\boxed{\frac{1}{3}}", r"\boxed{(1,2)}"]
    golds = ["5", r"\frac12", "3", "0.333333", "(1, 2)"]
    start = time.monotonic()
    verdicts = verify_batch(completions, golds, VerifySettings(workers=2, timeout=BOUND))
    elapsed = time.monotonic() - start
    assert [v.status for v in verdicts] == ["timeout", "correct", "incorrect", "correct", "correct"]
    assert verdicts[0].seconds is not None and BOUND <= verdicts[0].seconds < BOUND + 1.0
    # the whole batch: the bound, plus the other items (some may have been queued behind the stuck one)
    assert elapsed < BOUND + 2.0, f"batch took {elapsed:.2f}s with a {BOUND}s bound"
    # the killed worker was replaced: the pool still works
    assert verify_batch([r"\boxed{x+1}"], ["1+x"], VerifySettings(workers=2))[0].correct


def test_pool_stops_a_slow_item_inside_the_worker_and_keeps_the_worker() -> None:
    """The usual timeout is the worker's own alarm: same process before and after (its caches survive)."""
    with VerifyPool(1) as pool:
        verify_batch([r"\boxed{1}"], [r"\frac22"], pool=pool)
        pid = pool._workers[0].proc.pid
        verdicts = verify_batch([POWER_TOWER, r"\boxed{0.25}"], ["1", r"\frac14"], VerifySettings(timeout=BOUND),
                                pool=pool)
        assert [v.status for v in verdicts] == ["timeout", "correct"]
        assert BOUND <= verdicts[0].seconds < BOUND + 0.5
        assert pool._workers[0].proc.pid == pid


def test_pool_kills_a_worker_that_cannot_be_stopped() -> None:
    """A worker that never answers (here: SIGSTOPped, as if stuck in C code) is killed just after the grace."""
    from distill.verify.dispatch import HARD_KILL_GRACE_S

    with VerifyPool(1) as pool:
        verify_batch([r"\boxed{1}"], [r"\frac22"], pool=pool)
        pid = pool._workers[0].proc.pid
        os.kill(pid, signal.SIGSTOP)
        start = time.monotonic()
        verdicts = verify_batch([r"\boxed{\frac{1}{3}}", r"\boxed{0.25}"], ["0.333333", r"\frac14"],
                                VerifySettings(timeout=BOUND), pool=pool)
        first = time.monotonic() - start
        assert [v.status for v in verdicts] == ["timeout", "correct"]
        assert "worker killed" in verdicts[0].detail
        assert BOUND + HARD_KILL_GRACE_S <= verdicts[0].seconds < BOUND + 1.0
        assert pool._workers[0].proc.pid != pid and first < BOUND + 15.0


def test_pool_with_every_worker_stuck_still_finishes() -> None:
    with VerifyPool(1) as pool:
        start = time.monotonic()
        verdicts = verify_batch([POWER_TOWER, r"\boxed{0.25}"], ["1", r"\frac14"], VerifySettings(timeout=BOUND),
                                pool=pool)
        elapsed = time.monotonic() - start
    assert [v.status for v in verdicts] == ["timeout", "correct"]
    # one worker: the bound, then a replacement worker's start-up, not a hang
    assert elapsed < BOUND + 15.0


def test_verify_batch_off_the_main_thread() -> None:
    results: dict[str, object] = {}

    def work() -> None:
        try:
            results["pool"] = verify_batch(
                [POWER_TOWER, r"\boxed{\dfrac{2}{4}}"], ["1", "0.5"], VerifySettings(workers=2, timeout=BOUND)
            )
            results["serial"] = verify_batch([r"\boxed{\dfrac{2}{4}}"], ["0.5"], VerifySettings(workers=0))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            results["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in results, results.get("error")
    assert [v.status for v in results["pool"]] == ["timeout", "correct"]  # type: ignore[attr-defined]
    assert [v.status for v in results["serial"]] == ["correct"]  # type: ignore[attr-defined]


def _in_daemon(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    verdicts = verify_batch([POWER_TOWER, r"\boxed{0.5}"], ["1", r"\frac12"], VerifySettings(workers=2, timeout=BOUND))
    queue.put([v.status for v in verdicts])


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method needed")
def test_verify_batch_inside_a_daemonic_process() -> None:
    """multiprocessing forbids children of daemonic processes; our workers are plain subprocesses."""
    _warm()  # the forked child inherits a warm shared pool that it must not use
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_in_daemon, args=(queue,), daemon=True)
    proc.start()
    try:
        assert queue.get(timeout=60) == ["timeout", "correct"]
    finally:
        proc.join(timeout=10)
    assert proc.exitcode == 0


class _CountingPool:
    """Records the jobs verify_batch hands to the (shared, already running) pool."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str]] = []

    def run(self, jobs, **kwargs):  # type: ignore[no-untyped-def]
        self.jobs.extend(jobs)
        return shared_pool(2).run(jobs, **kwargs)


def test_verify_batch_dedupes_and_skips_what_needs_no_sympy() -> None:
    completions = [r"\boxed{0.5}"] * 20 + [r"\boxed{\frac{1}{2}}"] * 5 + ["no answer"] * 3 + ["<think>x"] * 2
    golds = [r"\frac12"] * 30
    pool = _CountingPool()
    verdicts = verify_batch(completions, golds, pool=pool)  # type: ignore[arg-type]
    assert pool.jobs == [("0.5", r"\frac12"), (r"\frac{1}{2}", r"\frac12")]
    assert [v.status for v in verdicts] == ["correct"] * 25 + ["no_answer"] * 3 + ["unfinished"] * 2
    assert all(v.extracted == "0.5" for v in verdicts[:20])


def test_verify_batch_order_modes_and_errors() -> None:
    verdicts = verify_batch(
        [r"\boxed{025}", r"\boxed{3}", "nothing"], ["25", "4", "5"], VerifySettings(mode="aime", workers=0)
    )
    assert [v.status for v in verdicts] == ["correct", "incorrect", "no_answer"]
    assert verify_batch([], [], VerifySettings(workers=2)) == []
    with pytest.raises(ValueError, match="2 completions but 1 gold"):
        verify_batch(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="item 1: gold answer '1/2'"):
        verify_batch(["a", "b"], ["1", "1/2"], VerifySettings(mode="aime"))
    with pytest.raises(ValueError, match="timeout"):
        verify_batch(["a"], ["1"], VerifySettings(timeout=0))


def test_verify_batch_progress(capsys: pytest.CaptureFixture[str]) -> None:
    verdicts = verify_batch([r"\boxed{1/2}", r"\boxed{0.25}"], ["0.5", r"\frac14"], VerifySettings(workers=0),
                            progress=True)
    assert all(v.correct for v in verdicts)
    assert "2/2" in capsys.readouterr().err


def test_worker_start_up_failure_is_reported_not_hung() -> None:
    # 20 MB of address space is too little to import math-verify: the worker reports and exits. Where the
    # memory runs out (compiling a module, formatting the traceback) decides which of the two errors comes.
    with VerifyPool(1, memory_limit_mb=20) as pool, pytest.raises(
        RuntimeError, match="failed to start|exited during start-up"
    ):
        pool.run([("0.5", r"\frac12")], timeout=5.0)


def test_pool_rejects_use_after_close() -> None:
    pool = VerifyPool(1)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run([("1", "1")], timeout=1.0)
    with pytest.raises(ValueError, match="at least 1 worker"):
        VerifyPool(0)


# ---------------------------------------------------------------- readability


def test_language_consistency() -> None:
    assert language_consistency("We have $x^2 + \\frac{1}{2}$ and 3 apples.") == 1.0
    assert language_consistency("") == 1.0
    assert language_consistency("$x = 1$, 2, 3") == 1.0  # only math: nothing to judge
    assert language_consistency("我们 计算 面积", lang="zh") == 1.0
    assert language_consistency("我们 计算 面积", lang="en") == 0.0
    assert language_consistency("So 面积 is four") == pytest.approx(3 / 5)
    assert language_consistency("Let x be a number, θ an angle") == 1.0  # single letters are variables
    assert language_consistency("```python\nпечать = 1\n```\nDone here") == 1.0  # code is ignored
    assert language_consistency("Итак, ответ пять") == 0.0
    assert language_consistency("Donc la réponse est huit.", lang="fr") == 1.0  # any code of the identifier
    with pytest.raises(ValueError, match="lang"):
        language_consistency("x", lang="xx")


def test_is_mixed_language() -> None:
    english = "First we compute the area of the triangle, then we divide by two. " * 3
    assert not is_mixed_language(english)
    assert is_mixed_language(english + " 所以面积是")
    assert not is_mixed_language("所以面积是十二", lang="zh")
    assert is_mixed_language("The 总和 is", threshold=0.6)  # 2 of 4 words English


def test_longest_paragraph_code_and_repetition() -> None:
    assert longest_paragraph("") == 0
    assert longest_paragraph("aa\n\nbbbb\n \ncc") == 4
    assert longest_paragraph("one\nparagraph\nhere") == len("one\nparagraph\nhere")
    for code in [
        "```\nx = 1\n```",
        "Try:\ndef f(x):\n    return x",
        "import numpy as np",
        "from math import comb",
        "#include <stdio.h>",
        "for i in range(10):",
        "print(comb(5, 2))",
    ]:
        assert has_code_block(code), code
    for prose in ["We import the idea from step 2.", "Define f(x) = x + 1.", "the print run", ""]:
        assert not has_code_block(prose), prose
    assert repetition_ratio("") == 0.0
    assert repetition_ratio("one two three", n=5) == 0.0
    assert repetition_ratio("a b c d e f g h i j k l", n=3) == 0.0
    assert repetition_ratio("wait, let me check again. " * 50, n=5) > 0.9
    with pytest.raises(ValueError):
        repetition_ratio("x", n=0)


def test_pool_routes_a_gold_to_the_same_worker_in_every_batch():
    """Worker caches only pay off if a gold lands on the same worker batch after batch (GRPO, eval)."""
    from distill.verify.dispatch import queues_by_gold

    golds = [rf"\frac{{{k}}}{{7}}" for k in range(40)]
    first = queues_by_gold([("1", g) for g in golds], 2)
    slot_of = {golds[i]: s for s, q in enumerate(first) for i in q}
    assert set(slot_of.values()) == {0, 1}  # both workers get golds
    shuffled = golds[::-1] + golds[:5]
    second = queues_by_gold([("2", g) for g in shuffled], 2)
    assert all(slot_of[shuffled[i]] == s for s, q in enumerate(second) for i in q)
