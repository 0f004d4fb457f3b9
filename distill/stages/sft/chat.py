"""The student's chat template: it renders exactly the training text and makes the student learn to stop.

A training row ``[user: problem, assistant: "<think>\\n...\\n</think>\\n\\n" + answer]`` renders as
``{bos}{user tag}{problem}{turn end}{assistant tag}{assistant content}{eos}``. The assistant content and the
EOS sit inside ``{% generation %}`` markers, so assistant-only loss trains the EOS; the pad token is a different
token, so padding never masks the EOS label (open-r1 issue 492). With ``add_generation_prompt`` the prompt ends
at the assistant tag: prompt + completion is the training text, token for token.

Role tags, per base family (chosen so the real bases need no new embedding rows):

- ``chatml`` (Qwen2.5 bases): ``<|im_start|>user\\n ... <|im_end|>\\n<|im_start|>assistant\\n``; EOS
  ``<|im_end|>``; pad ``<|endoftext|>`` (the Qwen2.5 bases ship pad == eos == ``<|endoftext|>``). All are
  in the base vocabulary, although the base models never trained on them.
- ``llama3`` (Llama-3.1-8B, Llama-3.3-70B-Instruct): header tags ``<|start_header_id|>user<|end_header_id|>``,
  EOS ``<|eot_id|>``, pad ``<|finetune_right_pad_id|>``, BOS ``<|begin_of_text|>``.
- ``distill`` (the tiny students, or any base without chat tokens): ``<|system|>``/``<|user|>``/
  ``<|assistant|>`` tags from :func:`distill.chat_template.r1_chat_template`; missing tags, EOS or pad are added as
  special tokens and the embeddings are resized (new rows start at the mean embedding).

``<think>``/``</think>`` stay plain text where the base vocabulary lacks them (the Qwen2.5 and Llama 3 bases).
DeepSeek's released students use their own ``<｜User｜>``/``<｜Assistant｜>`` tokens instead; the tags differ,
the training format around them does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill.chat_template import DEFAULT_TAGS, THINK_OPEN, assistant_content, r1_chat_template
from distill.errors import DistillError


@dataclass(frozen=True)
class ChatFormat:
    name: str
    system: str                     # text that opens each turn
    user: str
    assistant: str
    turn_end: str                   # text that closes a system or user turn
    eos: str | None                 # the assistant's end-of-turn token (None: keep the tokenizer's EOS)
    pads: tuple[str, ...]           # pad tokens to use, in order of preference
    bos: str | None = None          # rendered first when set
    specials: tuple[str, ...] = ()  # tokens the format needs as single vocabulary entries


FORMATS: dict[str, ChatFormat] = {
    "chatml": ChatFormat("chatml", "<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n",
                         "<|im_end|>\n", "<|im_end|>", ("<|endoftext|>", "<|fim_pad|>", "<|pad|>"),
                         specials=("<|im_start|>", "<|im_end|>")),
    "llama3": ChatFormat("llama3", "<|start_header_id|>system<|end_header_id|>\n\n",
                         "<|start_header_id|>user<|end_header_id|>\n\n",
                         "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", "<|eot_id|>",
                         ("<|finetune_right_pad_id|>", "<|pad|>"), bos="<|begin_of_text|>",
                         specials=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    "distill": ChatFormat("distill", DEFAULT_TAGS["system"], DEFAULT_TAGS["user"], DEFAULT_TAGS["assistant"], "\n",
                          None, ("<|pad|>",), specials=tuple(DEFAULT_TAGS.values())),
}
FALLBACK_EOS = "<|end_of_text|>"
FALLBACK_PAD = "<|pad|>"


@dataclass
class TemplateInstall:
    """What :func:`install_chat_template` changed: the model side must follow (ids, embedding rows)."""

    format: str
    eos_token: str
    pad_token: str
    bos_token: str | None
    added_tokens: list[str] = field(default_factory=list)


def pick_format(name: str, tokenizer: Any) -> ChatFormat:
    """The named format, or for ``auto`` the first whose special tokens are all in the vocabulary."""
    if name != "auto":
        if name not in FORMATS:
            raise DistillError(f"unknown chat format {name!r}; valid: auto, {', '.join(FORMATS)}")
        return FORMATS[name]
    vocab = tokenizer.get_vocab()
    for fmt in (FORMATS["distill"], FORMATS["chatml"], FORMATS["llama3"]):
        if all(tok in vocab for tok in fmt.specials):
            return fmt
    return FORMATS["distill"]


def _literal(text: str) -> str:
    """A Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def build_template(fmt: ChatFormat) -> str:
    """The Jinja chat template of a format (the ``distill`` one is the shared :func:`r1_chat_template`)."""
    if fmt.name == "distill":
        return r1_chat_template(system=fmt.system, user=fmt.user, assistant=fmt.assistant, add_bos=True)
    return (
        ("{{- bos_token }}" if fmt.bos else "")
        + "{%- for message in messages %}"
        + "{%- if message['role'] == 'system' %}{{- " + _literal(fmt.system) + " + message['content'] + "
        + _literal(fmt.turn_end) + " }}"
        + "{%- elif message['role'] == 'user' %}{{- " + _literal(fmt.user) + " + message['content'] + "
        + _literal(fmt.turn_end) + " }}"
        + "{%- elif message['role'] == 'assistant' %}{{- " + _literal(fmt.assistant) + " }}"
        + "{%- generation %}{{- message['content'] + eos_token }}{%- endgeneration %}"
        + ("{%- if not loop.last %}{{- '\\n' }}{%- endif %}" if fmt.turn_end.endswith("\n") else "")
        + "{%- else %}{{- raise_exception('unsupported role: ' + message['role']) }}"
        + "{%- endif %}"
        + "{%- endfor %}"
        + "{%- if add_generation_prompt %}{{- " + _literal(fmt.assistant) + " }}"
        + "{%- if force_think is defined and force_think %}{{- " + _literal(THINK_OPEN + "\n") + " }}{%- endif %}"
        + "{%- endif %}"
    )


def install_chat_template(tokenizer: Any, fmt: ChatFormat) -> TemplateInstall:
    """Give ``tokenizer`` the format's template, an EOS, a pad token distinct from it, and any missing tags.

    Tokens missing from the vocabulary are added as special tokens; the caller resizes the model's
    embeddings (:func:`sync_model_tokens`).
    """
    vocab = tokenizer.get_vocab()
    needed = [t for t in fmt.specials if t not in vocab]
    if fmt.bos and fmt.bos not in vocab:
        needed.append(fmt.bos)
    eos = fmt.eos or tokenizer.eos_token or FALLBACK_EOS
    if eos not in vocab and eos not in needed:
        needed.append(eos)
    pad = next((p for p in fmt.pads if p in vocab and p != eos), None)
    if pad is None and tokenizer.pad_token and tokenizer.pad_token != eos:
        pad = tokenizer.pad_token
    if pad is None:
        pad = FALLBACK_PAD
        needed.append(pad)
    if needed:
        tokenizer.add_special_tokens({"extra_special_tokens": needed}, False)
    tokenizer.eos_token = eos
    tokenizer.pad_token = pad
    if fmt.bos:
        tokenizer.bos_token = fmt.bos
    if fmt.name == "distill" and tokenizer.bos_token is None:
        # r1_chat_template renders bos_token first; without one Jinja would print "None".
        tokenizer.bos_token = eos
    tokenizer.chat_template = build_template(fmt)
    if tokenizer.eos_token_id == tokenizer.pad_token_id:  # pragma: no cover - guarded above
        raise DistillError("internal: EOS and pad tokens are the same; the student would never learn to stop")
    return TemplateInstall(fmt.name, eos, pad, tokenizer.bos_token if (fmt.bos or fmt.name == "distill") else None,
                           needed)


def embedding_rows(model: Any) -> int:
    """Rows of the model's input embedding, also when DeepSpeed ZeRO-3 has partitioned it.

    Under ZeRO-3 (``zero3_init``) every parameter's ``.data`` is an empty placeholder (``weight.shape ==
    torch.Size([0])``) and the full shape lives in ``weight.ds_shape`` (DeepSpeed's
    ``_convert_to_deepspeed_param``: ``param.ds_shape = param.shape``, ``param.ds_numel = param.numel()``). A
    meta-device weight keeps its shape. Failing both, the config's ``vocab_size``; never a guess of 0.
    """
    weight = model.get_input_embeddings().weight
    ds_shape = getattr(weight, "ds_shape", None)
    if ds_shape is not None and len(ds_shape) == 2:
        return int(ds_shape[0])
    if weight.dim() == 2 and weight.shape[0] > 0:
        return int(weight.shape[0])
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    vocab = getattr(config, "vocab_size", None)
    if isinstance(vocab, int) and vocab > 0:
        return vocab
    raise DistillError(f"cannot tell the embedding's size (weight shape {tuple(weight.shape)}, no ds_shape, no "
                       "vocab_size in the config): refusing to resize it")


def parameter_count(model: Any, *, trainable_only: bool = False) -> int:
    """Parameters of ``model``, counting ZeRO-3-partitioned ones at their full size (``ds_numel``), as transformers'
    ``get_model_param_count`` does; ``p.numel()`` of a partitioned parameter is 0."""
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters()
               if p.requires_grad or not trainable_only)


def sync_model_tokens(model: Any, tokenizer: Any) -> int:
    """Make the model agree with the tokenizer: embedding rows, EOS/pad/BOS ids. Returns rows added.

    The embedding only grows, and only when the tokenizer has ids past its last row: the Qwen2.5 bases carry
    152,064 rows (151,936 for 1.5B) for a tokenizer of 151,665 ids, and those padding rows stay.
    """
    rows = embedding_rows(model)
    added = 0
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=True)
        added = embedding_rows(model) - rows
        if added <= 0:  # pragma: no cover - transformers rounds up to a multiple of 64 >= len(tokenizer)
            raise DistillError(f"embedding resize from {rows} rows for {len(tokenizer)} tokens did not grow it")
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
        if tokenizer.bos_token_id is not None:
            cfg.bos_token_id = tokenizer.bos_token_id
    return added


def check_training_format(tokenizer: Any) -> dict[str, Any]:
    """Render a sample conversation and check the three promises; raise DistillError naming the broken one.

    1. prompt (with generation prompt) + assistant content + EOS == the full training text;
    2. the assistant mask covers exactly the assistant content and the EOS;
    3. EOS and pad are different tokens.
    """

    content = assistant_content("Add the units: 3 + 4 = 7.", "The answer is $\\boxed{7}$.")
    messages = [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": content}]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    if full != prompt + content + tokenizer.eos_token:
        raise DistillError("the chat template does not render prompt + completion + EOS as the training text:\n"
                           f"  full:   {full!r}\n  prompt: {prompt!r}")
    enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    if not trained or trained[-1] != tokenizer.eos_token_id:
        raise DistillError("the chat template's assistant mask does not end on the EOS token: the student would "
                           "not learn to stop (put the EOS inside {% generation %} ... {% endgeneration %})")
    if tokenizer.decode(trained) != content + tokenizer.eos_token:
        raise DistillError("the chat template's assistant mask does not cover exactly the assistant turn: "
                           f"{tokenizer.decode(trained)!r}")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise DistillError("the tokenizer's pad token equals its EOS: padding would mask the EOS label")
    return {"prompt_tokens": len(ids) - len(trained), "assistant_tokens": len(trained)}
