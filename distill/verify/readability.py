"""Readability checks on a chain of thought: language mixing, wall-of-text paragraphs, code, loops.

The R1 paper filters its cold-start and rejection-sampled data for "mixed languages, long paragraphs, and
code blocks", and rewards RL on language consistency ("the proportion of target language words in the
CoT"). These are the measures; thresholds belong to the filter and reward configs.

Language is measured by :mod:`distill.verify.language` (a language identifier on sentences; what counts as a
word, and why plain-text math never does, is in :mod:`distill.verify.language_words`).
"""

from __future__ import annotations

import re

from distill.verify import language as _language

LANGUAGES = _language.SUPPORTED   # the codes a target may be: the language identifier's

_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_HAN_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
_PARAGRAPH_SPLIT_RE = re.compile(r"\n[ \t\r\f\v]*\n")
_CODE_LINE_RE = re.compile(
    r"^[ \t]*(?:"
    r"def [A-Za-z_]\w*\s*\("
    r"|class [A-Za-z_]\w*\s*[(:]"
    r"|import [A-Za-z_][\w.]*(?:\s+as\s+\w+)?(?:\s*,\s*[A-Za-z_][\w.]*)*[ \t]*$"
    r"|from [A-Za-z_][\w.]* import [\w*]"
    r"|#include\s*[<\"]"
    r"|(?:int|void)\s+main\s*\("
    r"|public\s+static\s+void\s"
    r"|for [A-Za-z_]\w* in range\("
    r"|print\(.*\)[ \t]*$"
    r"|>>> "
    r"|\\begin\{(?:lstlisting|verbatim|minted)\}"
    r")",
    re.MULTILINE,
)


def language_consistency(text: str, lang: str = "en", *, problem: str | None = None) -> float:
    """Share of words in ``lang`` among all counted words, in [0, 1]; 1.0 when nothing is countable.

    :func:`distill.verify.language.language_consistency`: ``lang`` is any code of :data:`LANGUAGES` or
    ``"auto"`` (the language of ``problem``); plain-text math is no word, words are identified per sentence.

    Example:
        >>> language_consistency("Let $x = 2$, so the answer is 4.")
        1.0
        >>> round(language_consistency("We compute 面积 then divide"), 2)  # 4 English words, 2 Han
        0.67
        >>> language_consistency("所以答案是 $5$", lang="zh")
        1.0
    """
    return _language.language_consistency(text, lang, problem=problem)


def is_mixed_language(text: str, lang: str = "en", threshold: float = 0.95) -> bool:
    """Whether fewer than ``threshold`` of the words are in ``lang``.

    Example:
        >>> is_mixed_language("The sum is 12."), is_mixed_language("The 总和 is 12.")
        (False, True)
    """
    return language_consistency(text, lang) < threshold


def longest_paragraph(text: str) -> int:
    """Length in characters of the longest paragraph (paragraphs are separated by blank lines).

    Example:
        >>> longest_paragraph("short\\n\\na longer one\\n")
        12
    """
    if not text:
        return 0
    return max(len(p.strip()) for p in _PARAGRAPH_SPLIT_RE.split(text))


_FENCE_RE = re.compile(r"```[ \t]*(?P<tag>[^\n`]*)\n?(?P<body>.*?)(?:```|\Z)", re.DOTALL)
_PLAIN_TAGS = frozenset({"", "text", "txt", "plain", "plaintext", "math", "latex", "tex"})
# Arithmetic laid out in columns: digits, operators, spaces, rules of dashes/underscores, "=", brackets.
_LAYOUT_RE = re.compile(r"[\d\s+\-*/×÷·=.,:;()\[\]^_|—–−%<>≤≥≠']*")
# A grid of single letters and digits ("a b c" over "d e f"), with no operators: placeholders, not code.
_GRID_RE = re.compile(r"[\sA-Za-z\d\-_|]*")
_TWO_LETTERS_RE = re.compile(r"[A-Za-z]{2}")


def has_code_block(text: str) -> bool:
    """Whether ``text`` contains a fenced code block or lines that are plainly code.

    A fenced block without a language tag (or tagged ``text``/``math``) that holds only arithmetic layout
    (digits, operators, spaces, dashes/underscores, ``=``; no letters) is not code: R1 traces fence column
    arithmetic (real trace MATH problem 5749: `` 333.33`` over ``-111.11``). Nor is a grid of single letters
    and digits with no operators (``a b c`` over ``d e f``). ``x = 1`` in a fence is code.

    Example:
        >>> has_code_block("```python\\nprint(1)\\n```"), has_code_block("def f(x):\\n    return x")
        (True, True)
        >>> has_code_block("We define f(x) = x^2 and import the result from step 2.")
        False
        >>> has_code_block("```\\n 333.33\\n-111.11\\n-------\\n 222.22\\n```")
        False
    """
    if not text:
        return False
    if _CODE_LINE_RE.search(text) is not None:
        return True
    for fence in _FENCE_RE.finditer(text):
        if fence.group("tag").strip().lower() not in _PLAIN_TAGS:
            return True
        body = fence.group("body")
        is_grid = _GRID_RE.fullmatch(body) is not None and _TWO_LETTERS_RE.search(body) is None
        if not (_LAYOUT_RE.fullmatch(body) or is_grid):
            return True
    return False


def repetition_ratio(text: str, n: int = 10) -> float:
    """Share of word ``n``-grams that repeat an earlier one: 0 for no repetition, near 1 for a loop.

    Example:
        >>> repetition_ratio("a b c d e f", n=2)
        0.0
        >>> round(repetition_ratio("wait let me check " * 10, n=4), 2)
        0.89
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = (text or "").split()
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    unique = len({tuple(words[i : i + n]) for i in range(total)})
    return 1.0 - unique / total


# ---------------------------------------------------------------- truncated reasoning, leftover tokens

_TERMINAL = frozenset(".!?。！？…")
_CLOSINGS = ("\\]", "\\)", "$", "}", ")", "]", "|", "\\end")
# A last character that cannot end a finished sentence or formula: the text was cut after it.
_DANGLING = frozenset(",:;=+-*/^_<>≤≥≠≈×÷⇒→←↔∧∨±∓&\\([{−–—")
_TRAILING_DECOR = "*`\"'”’»"
# Words that never end an English sentence: a reasoning whose last word is one of these was cut.
_FUNCTION_WORDS = frozenset(
    "a an the and or but nor so because since if then than that which who whom whose where when while as "
    "of to in on at by for from with into onto over under between about through per via without within "
    "is are was were be been being am this these those its their our my your his her we i you they he she "
    "can could would should will shall may might must do does did has have had not let let's also perhaps "
    "maybe just very more less most least such both either neither each every some any all".split()
)
# Common English words: a last line holding one of them is prose (it needs a full stop), not a formula.
_PROSE_WORDS = _FUNCTION_WORDS | frozenset(
    "there here it what how why yes no now get gives got find found check wait hmm okay ok equal equals "
    "means mean".split()
)
_WORD_RE = re.compile(r"[A-Za-z']+")
_LEAD_CONNECTOR_RE = re.compile(r"^\s*(?:so|thus|hence|therefore|then|finally|now)\b[,:]?", re.IGNORECASE)


def looks_truncated(reasoning: str) -> bool:
    """Whether the reasoning's last sentence was cut off (by the length limit), whatever follows it.

    Conservative: ``True`` only when the text ends with a dangling character (comma, colon, operator,
    opening bracket, backslash), when its last paragraph leaves a math block, brace or bracket open, a word that cannot end a sentence
    (``and``, ``the``, ``of``, ``I``...), or prose without terminal punctuation. A text that ends with
    ``.``/``!``/``?``, a closing formula or bracket (``\\]``, ``\\)``, ``$``, ``}``, ``)``), a heading
    (``**Final Answer**``) or a bare equation line (``m + n = 116``) is not truncated. A cut that happens
    to fall after a full stop cannot be seen.

    Example:
        >>> looks_truncated("So the answer is 5."), looks_truncated("Then \\\\[ x = \\\\boxed{5} \\\\]")
        (False, False)
        >>> looks_truncated("Alternatively, maybe I"), looks_truncated("We get 2(x + 1) ="), looks_truncated("how man")
        (True, True, True)
        >>> looks_truncated("So, m + n = 1 + 115 = 116"), looks_truncated("420 is divisible by 36")
        (False, True)
    """
    text = (reasoning or "").rstrip()
    if not text:
        return False
    last_paragraph = _PARAGRAPH_SPLIT_RE.split(text)[-1]
    if _opens_more_than_closes(last_paragraph):
        return True
    body = text.rstrip(_TRAILING_DECOR + " \t") or text
    if body[-1] in _TERMINAL or text.endswith(_CLOSINGS) or body.endswith(_CLOSINGS):
        return False
    if body[-1] in _DANGLING:
        return True
    last_line = text.rsplit("\n", 1)[-1].strip()
    if last_line.startswith("#") or (last_line.startswith("**") and last_line.endswith("**")):
        return False  # a heading
    words = _WORD_RE.findall(body[-40:])
    if words and words[-1].lower() in _FUNCTION_WORDS:
        return True
    if _is_formula_line(last_line):
        return False
    return body[-1].isalnum()


def _opens_more_than_closes(paragraph: str) -> bool:
    """An unclosed ``\\[``, ``\\(``, ``$$``, ``{`` or bracket in ``paragraph`` (escaped braces do not count;
    ``(`` and ``[`` count together, so a half-open interval ``[0, 1)`` is closed)."""
    if paragraph.count("\\[") > paragraph.count("\\]") or paragraph.count("\\(") > paragraph.count("\\)"):
        return True
    if paragraph.count("$$") % 2:
        return True
    if paragraph.count("(") + paragraph.count("[") > paragraph.count(")") + paragraph.count("]"):
        return True
    depth = 0
    i = 0
    while i < len(paragraph):
        ch = paragraph[i]
        if ch == "\\":
            i += 2
            continue
        depth += (ch == "{") - (ch == "}")
        i += 1
    return depth > 0


def _is_formula_line(line: str) -> bool:
    """Whether ``line`` is a bare relation (``m + n = 116``, ``lw + lh + wh = 27``) rather than prose."""
    if not any(sign in line for sign in ("=", "<", ">", "≤", "≥", "≠", "≈", "\\le", "\\ge")):
        return False
    if _HAN_RE.search(line):
        return False
    line = _COMMAND_RE.sub(" ", _LEAD_CONNECTOR_RE.sub("", line))
    return not any(word.lower() in _PROSE_WORDS for word in _WORD_RE.findall(line))


_SPECIAL_TOKEN_RE = re.compile(
    r"<\|[A-Za-z0-9_.:\-]{1,40}\|>"  # <|im_start|>, <|im_end|>, <|endoftext|>, <|eot_id|>, <|begin_of_thought|>
    r"|<｜[^｜<>\n]{1,40}｜>"  # DeepSeek: <｜end▁of▁sentence｜>, <｜Assistant｜>, <｜User｜>
    r"|</s>|<eos>|<bos>|<pad>|<unk>|<start_of_turn>|<end_of_turn>|\[/?INST\]"
)


def leftover_special_tokens(text: str, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """The chat-template special tokens left in ``text``, each once, in order of first appearance.

    Recognises ``<|...|>`` tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<|eot_id|>``...),
    DeepSeek's full-width ``<｜...｜>`` tokens (``<｜end▁of▁sentence｜>``), and ``</s>``, ``<eos>``,
    ``<bos>``, ``<pad>``, ``<unk>``, ``<start_of_turn>``, ``<end_of_turn>``, ``[INST]``, ``[/INST]``.
    ``<think>`` tags are not special tokens. ``ignore``: tokens that are expected (a format's own markers
    when the text was not split).

    Example:
        >>> leftover_special_tokens("x = 2.<|im_end|>\\n<|endoftext|><|im_end|>")
        ['<|im_end|>', '<|endoftext|>']
        >>> leftover_special_tokens("The answer is 5.<｜end▁of▁sentence｜>"), leftover_special_tokens("<think>a</think>")
        (['<｜end▁of▁sentence｜>'], [])
    """
    found: list[str] = []
    for m in _SPECIAL_TOKEN_RE.finditer(text or ""):
        token = m.group(0)
        if token not in found and token not in ignore:
            found.append(token)
    return found
