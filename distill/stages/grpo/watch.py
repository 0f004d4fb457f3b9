"""Rollout watchers of ``distill grpo``: shares of the rollouts that show a behaviour, logged, never rewarded.

The R1-Zero paper reports, besides accuracy and length, how often the policy reflects ("wait, let me
re-evaluate") and, for R1, how often its reasoning mixes languages. A recipe names such behaviours under
``watch:``; each is counted on every step's rollouts and on every held-out eval's samples:

- ``{pattern: REGEX}``: the completion's text matches the regular expression (``re.search``);
- ``{language: CODE, below: 0.95}``: the reasoning (the ``<think>`` part; the whole text without one) has fewer
  than ``below`` of its words in language ``CODE``, by :func:`distill.verify.language_consistency` (the measure
  the filter and the language-consistency reward use): the mixed-language share.

Each watcher goes to TRL as one more reward function with weight 0: TRL logs its batch mean (the share) as it
logs a reward's (``rewards/watch_<name>/mean``; ``metrics.jsonl`` calls it ``watch/<name>``), and a weight of 0
keeps it out of the reward and the advantages (TRL sums ``reward x weight``).

>>> w = build_watchers({"reflection": {"pattern": "Wait"}, "mixed": {"language": "en"}})
>>> [x.label for x in w], shares(w, ["<think>Wait.</think> 4", "<think>So 面积 is 4</think> 4"])
(['watch_reflection', 'watch_mixed'], {'reflection': 0.5, 'mixed': 0.5})
>>> w[0].reward_fn()([[{"role": "assistant", "content": "Wait"}], "no"])
[1.0, 0.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distill.rewards import completion_text
from distill.verify import language_consistency, split_think
from distill.verify.readability import LANGUAGES

PREFIX = "watch_"             # the reward-function name TRL logs a watcher under


@dataclass(frozen=True)
class Watcher:
    name: str
    pattern: re.Pattern[str] | None = None
    language: str | None = None
    below: float = 0.95

    @property
    def label(self) -> str:
        return PREFIX + self.name

    def hit(self, text: str) -> bool:
        if self.pattern is not None:
            return self.pattern.search(text) is not None
        parts = split_think(text)
        cot = parts.reasoning if parts.reasoning is not None else text
        return language_consistency(cot, str(self.language)) < self.below

    def reward_fn(self) -> Any:
        """The watcher in TRL's reward signature: 1.0 where the behaviour shows, else 0.0 (weight 0)."""

        def watch(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return [1.0 if self.hit(completion_text(c)) else 0.0 for c in completions]

        watch.__name__ = watch.__qualname__ = self.label
        return watch


def build_watchers(spec: dict[str, Any] | None) -> list[Watcher]:
    """Watchers from a recipe's ``watch:`` mapping; a wrong entry is a ValueError naming it."""
    out = []
    for name, raw in (spec or {}).items():
        params = dict(raw or {})
        unknown = sorted(set(params) - {"pattern", "language", "below"})
        if unknown or ("pattern" in params) == ("language" in params):
            raise ValueError(f"watch {name!r}: give either pattern: REGEX or language: CODE (with below: SHARE), "
                             f"got {sorted(params)}")
        if "pattern" in params:
            try:
                out.append(Watcher(str(name), pattern=re.compile(str(params["pattern"]))))
            except re.error as exc:
                raise ValueError(f"watch {name!r}: pattern {params['pattern']!r} is not a regular expression: "
                                 f"{exc}") from None
            continue
        lang, below = str(params["language"]), float(params.get("below", 0.95))
        if lang not in LANGUAGES:
            raise ValueError(f"watch {name!r}: language must be one of the identifier's codes, got {lang!r}")
        if not 0 < below <= 1:
            raise ValueError(f"watch {name!r}: below must be in (0, 1], got {below}")
        out.append(Watcher(str(name), language=lang, below=below))
    return out


def shares(watchers: Sequence[Watcher], texts: Sequence[str]) -> dict[str, float]:
    """Each watcher's share of ``texts`` (0.0 for no texts)."""
    return {w.name: (sum(w.hit(t) for t in texts) / len(texts) if texts else 0.0) for w in watchers}
