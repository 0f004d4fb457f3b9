"""The chat template that renders the R1 training format, shared by tiny models and SFT students.

A conversation renders as::

    {bos}{system}<|user|>{problem}\\n<|assistant|><think>\\n...\\n</think>\\n\\n{answer}{eos}

The assistant turn (its content and the EOS that ends it) sits inside ``{% generation %}`` markers, which TRL
needs for ``assistant_only_loss``; the EOS is trained, so students learn to stop. With
``add_generation_prompt`` the prompt ends at the assistant tag, so prompt + completion equals the training
text token for token. ``force_think=True`` (a template variable) starts the assistant turn with
``<think>\\n``, as DeepSeek's later templates do.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
DEFAULT_TAGS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}


def r1_chat_template(*, system: str = DEFAULT_TAGS["system"], user: str = DEFAULT_TAGS["user"],
                     assistant: str = DEFAULT_TAGS["assistant"], add_bos: bool = True) -> str:
    """Return the Jinja chat template for the given role tags.

    >>> "{%- generation %}" in r1_chat_template()
    True
    """
    bos = "{{- bos_token }}" if add_bos else ""
    return (
        bos
        + "{%- for message in messages %}"
        + "{%- if message['role'] == 'system' %}{{- '" + system + "' + message['content'] + '\\n' }}"
        + "{%- elif message['role'] == 'user' %}{{- '" + user + "' + message['content'] + '\\n' }}"
        + "{%- elif message['role'] == 'assistant' %}{{- '" + assistant + "' }}"
        + "{%- generation %}{{- message['content'] + eos_token }}{%- endgeneration %}"
        + "{%- endif %}"
        + "{%- endfor %}"
        + "{%- if add_generation_prompt %}{{- '" + assistant + "' }}"
        + "{%- if force_think is defined and force_think %}{{- '" + THINK_OPEN + "\\n' }}{%- endif %}"
        + "{%- endif %}"
    )


def assistant_content(reasoning: str, answer: str) -> str:
    """The assistant turn of the training format: ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}``."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"
