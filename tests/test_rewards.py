"""Tests for distill.rewards: TRL's reward signature with string and chat completions, and build_rewards."""

from __future__ import annotations

import pytest

from distill.rewards import (
    REWARDS,
    accuracy_reward,
    build_rewards,
    completion_text,
    format_reward,
    language_consistency_reward,
    overlong_penalty,
    r1_zero_format_reward,
)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def trl_kwargs(n: int, **columns: list) -> dict:
    """What GRPOTrainer passes besides completions (columns repeated per completion)."""
    return {"prompts": ["p"] * n, "completion_ids": [[1, 2, 3]] * n, "trainer_state": None, **columns}


TEXTS = [
    "<think>2+2=4</think> The answer is $\\boxed{4}$.",
    "<think>2+2=5</think> The answer is $\\boxed{5}$.",
    "<think>never finished \\boxed{4}",
    "\\boxed{4}",
]


@pytest.mark.parametrize("wrap", [str, chat], ids=["string", "chat"])
def test_accuracy_reward(wrap) -> None:  # type: ignore[no-untyped-def]
    completions = [wrap(t) for t in TEXTS]
    rewards = accuracy_reward(completions, **trl_kwargs(4, answer=["4", "4", "4", "4"]))
    assert rewards == [1.0, 0.0, 0.0, 1.0]


def test_accuracy_reward_missing_gold_gives_none() -> None:
    rewards = accuracy_reward(TEXTS[:3], **trl_kwargs(3, answer=["4", None, ""]))
    assert rewards == [1.0, None, None]


def test_accuracy_reward_needs_the_answer_column() -> None:
    with pytest.raises(ValueError, match=r"no dataset column 'answer'.*\['solution'\]"):
        accuracy_reward(TEXTS, **trl_kwargs(4, solution=["4"] * 4))
    with pytest.raises(ValueError, match="4 completions but 3 gold"):
        accuracy_reward(TEXTS, **trl_kwargs(4, answer=["4"] * 3))


def test_accuracy_reward_configured() -> None:
    (reward,), _ = build_rewards(
        {"accuracy": {"mode": "aime", "answer_column": "solution", "prompt_has_think": True, "workers": 0}}
    )
    completions = [chat("so</think> \\boxed{025}"), chat("so \\boxed{25}"), chat("so</think> \\boxed{24}")]
    # dataset integer answers (AIME files sometimes store ints) are accepted
    assert reward(completions, **trl_kwargs(3, solution=[25, "025", "25"])) == [1.0, 0.0, 0.0]
    # a dataset column named like a reward setting does not change the setting
    assert reward(completions, **trl_kwargs(3, solution=["25"] * 3, mode=["math"] * 3)) == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("wrap", [str, chat], ids=["string", "chat"])
def test_format_reward(wrap) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "<think>reason</think> answer",
        "<think>reason</think>",
        "<think>reason</think>   \n",
        "no tags at all",
        "<think>a</think><think>b</think> answer",
        "reason</think> answer",
        "\n<think>\nreason\n</think>\n\nanswer",
    ]
    assert format_reward([wrap(t) for t in texts]) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    (prefilled,), _ = build_rewards({"format": {"prompt_has_think": True}})
    assert prefilled(
        [wrap("reason</think> answer"), wrap("<think>reason</think> answer"), wrap("reason")]
    ) == [
        1.0,
        1.0,
        0.0,
    ]


@pytest.mark.parametrize("wrap", [str, chat], ids=["string", "chat"])
def test_r1_zero_format_reward(wrap) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "<think> r </think> <answer> 4 </answer>",
        "<think>r</think>\n<answer>\\boxed{4}</answer>\n",
        "<think> r </think> 4",
        "<think> r </think> <answer> </answer>",
        "<think> r </think> <answer>4</answer> trailing",
        "<answer>4</answer>",
        "<think>r</think><answer>4</answer><answer>5</answer>",
    ]
    assert r1_zero_format_reward([wrap(t) for t in texts]) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("wrap", [str, chat], ids=["string", "chat"])
def test_language_consistency_reward(wrap) -> None:  # type: ignore[no-untyped-def]
    texts = ["<think>We add the numbers</think> 面积", "<think>We 计算</think> fine", "plain english text"]
    assert language_consistency_reward([wrap(t) for t in texts]) == [1.0, pytest.approx(1 / 3), 1.0]
    (zh,), _ = build_rewards({"language_consistency": {"lang": "zh"}})
    assert zh([wrap("<think>我们计算</think> done")]) == [1.0]


def test_overlong_penalty_tokens_and_chars() -> None:
    (penalty,), _ = build_rewards({"overlong": {"max_length": 10, "buffer": 4}})
    ids = [[0] * 6, [0] * 8, [0] * 10, [0] * 11]
    assert penalty(["x"] * 4, completion_ids=ids) == [0.0, -0.5, -1.0, -1.0]  # tokens when TRL gives ids
    assert penalty(["x" * 6, "x" * 9], prompts=["p", "p"]) == [0.0, -0.75]  # characters otherwise
    (tokens_only,), _ = build_rewards({"overlong": {"max_length": 10, "cache": 4, "unit": "tokens"}})
    with pytest.raises(ValueError, match="completion_ids"):
        tokens_only(["x"])
    assert overlong_penalty(["short"]) == [0.0]
    with pytest.raises(ValueError, match="not both"):
        build_rewards({"overlong": {"buffer": 4, "cache": 8}})
    with pytest.raises(ValueError, match="buffer must be"):
        build_rewards({"overlong": {"max_length": 4, "buffer": 8}})


def test_build_rewards_names_weights_and_aliases() -> None:
    fns, weights = build_rewards(
        {
            "accuracy": {"weight": 1.0, "mode": "math"},
            "format": {"weight": 0.2},
            "aime_accuracy": {"reward": "accuracy", "mode": "aime", "weight": 2},
            "language_consistency": None,
        }
    )
    assert [f.__name__ for f in fns] == ["accuracy", "format", "aime_accuracy", "language_consistency"]
    assert len({f.__name__ for f in fns}) == len(fns)
    assert weights == [1.0, 0.2, 2.0, 1.0]
    assert set(REWARDS) == {"accuracy", "format", "r1_zero_format", "language_consistency", "overlong", "code"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"accuracy": {"weight": 1.0}, "corectness": {}}, r"unknown reward 'corectness'.*'accuracy'"),
        ({"x": {"reward": "nope"}}, "unknown reward 'nope'"),
        ({"accuracy": {"modee": "aime"}}, r"unknown parameter\(s\) \['modee'\].*'answer_column'"),
        ({"format": {"weight": "high"}}, "weight must be a number"),
        ({"accuracy": {"mode": "gsm8k"}}, "mode must be one of"),
        ({"language_consistency": {"lang": "xx"}}, "lang must be one of"),
        ({}, "no rewards"),
    ],
)
def test_build_rewards_errors(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_rewards(spec)


def test_completion_text_forms() -> None:
    assert completion_text("s") == "s"
    assert completion_text(chat("c")) == "c"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "parts"}]}]) == "parts"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert completion_text(None) == ""
    with pytest.raises(TypeError):
        completion_text(42)
