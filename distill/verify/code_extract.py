"""Find the program in a model's answer: the last fenced code block in the requested language. Pure text.

Examples:
    >>> extract_program("First try:\\n```python\\nx = 1\\n```\\nBetter:\\n```python\\nx = 2\\n```")
    'x = 2\\n'
    >>> extract_program("```py\\nprint(1)\\n```")
    'print(1)\\n'
    >>> extract_program("```\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_program("```python\\nok = 1\\n```\\nIn C++:\\n```cpp\\nint main() {}\\n```")
    'ok = 1\\n'
    >>> extract_program("```cpp\\nint main() {}\\n```", language="cpp")
    'int main() {}\\n'
    >>> extract_program("No code here.") is None
    True
    >>> extract_program("```python\\nunfinished = True") is None
    True
    >>> extract_program("1. Solution:\\n   ```python\\n   def f():\\n       return 1\\n   ```")
    'def f():\\n    return 1\\n'
"""

from __future__ import annotations

import re
import textwrap

from distill.verify.split import split_think

# A fence: up to 3 spaces (or deeper, for blocks inside list items), three or more backticks, an info string,
# the body, and a closing fence of the same indentation style with at least as many backticks.
_FENCE_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^[ \t]*(?P=ticks)`*[ \t]*$",
    re.MULTILINE | re.DOTALL,
)

LANGUAGE_ALIASES: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", "py3"}),
    "cpp": frozenset({"cpp", "c++", "cc", "cxx"}),
    "java": frozenset({"java"}),
    "javascript": frozenset({"javascript", "js"}),
}


def _matches(info: str, language: str) -> bool:
    """An untagged block counts as any language; a tagged one only as its own (aliases included)."""
    tag = info.strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    if not tag:
        return True
    names = LANGUAGE_ALIASES.get(language.lower(), frozenset({language.lower()}))
    return tag in names or tag.lstrip("{.").rstrip("}") in names


def extract_program(answer_text: str, language: str = "python") -> str | None:
    """The body of the LAST complete fenced code block (```lang ... ```) whose tag is ``language`` (or an
    alias such as ``py``) or absent; None when there is none or it is blank.

    The body is dedented (blocks inside list items) and ends with one newline. An unterminated block (a
    truncated answer) does not count. Never runs or parses the code.
    """
    found = None
    for match in _FENCE_RE.finditer(answer_text):
        if _matches(match.group("info"), language):
            found = match.group("body")
    if found is None:
        return None
    body = textwrap.dedent(found).strip("\n")
    return body + "\n" if body.strip() else None


def program_of(completion: str, prompt: str = "", *, prompt_has_think: bool = False) -> str | None:
    """The program a completion stands for (None: no code).

    - the answer part (after ``</think>`` when the reasoning is tagged) has a fenced block: the last one
      (:func:`extract_program`), preceded by the prompt when the prompt is valid Python on its
      own (HumanEval's signature + docstring is: its imports and helper functions then stay defined, and the
      fenced function replaces the docstring-only stub);
    - no fence and no reasoning block: HumanEval's canonical form, prompt + completion (the function body);
    - no fence after a reasoning block, or the reasoning never closed: no code.
    """
    parts = split_think(completion, prompt_has_think=prompt_has_think)
    program = extract_program(parts.answer)
    if program is not None:
        if prompt.strip() and _compiles(prompt):
            return prompt.rstrip("\n") + "\n\n\n" + program
        return program
    if parts.has_think or not completion.strip():
        return None
    return prompt + completion


def _compiles(source: str) -> bool:
    try:
        compile(source, "<prompt>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True
