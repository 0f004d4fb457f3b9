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
