"""`distill tiny`: real tiny checkpoints that reload offline with identical token ids."""

from __future__ import annotations

import json
import random

import pytest

from distill.stages.tiny.build import synthetic_corpus

ARCHS = ["tiny_qwen", "tiny_llama"]


def roundtrip_strings() -> list[str]:
    rng = random.Random(1)
    texts = list(synthetic_corpus(150, seed=123))  # a different seed from the one the BPE was trained on
    texts += [
        "", " ", "\n\n", "  leading spaces", "trailing   ", "tabs\tand\nnewlines\r\n", "ünïcödé café", "漢字とかな",
        "emoji 🙂 and math ∑_{i=1}^n i^2", "\\boxed{\\dfrac{1}{2}}", "<think>\nreasoning\n</think>\n\nanswer",
        "<|user|>hi\n<|assistant|>", "0123456789", "3.14159 and -2.5e10", "x^{2}+y_{1}", "a" * 300,
        "It's they're we'll I'd", "MiXeD CaSe", "Привет мир", "مرحبا", "$$\\int_0^1 f(x)\\,dx$$",
    ]
    alphabet = "abcxyz0123456789 +-*/=^_{}()[]\\$.,:;!?'\"\n\t<>|éü漢"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(60)]
    return texts


@pytest.mark.parametrize("fixture", ARCHS)
def test_tokenizer_ids_roundtrip_after_reload(fixture, request):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder = request.getfixturevalue(fixture)
    reloaded = AutoTokenizer.from_pretrained(folder)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    texts = roundtrip_strings()
    assert len(texts) >= 200
    for text in texts:
        ids = reloaded(text, add_special_tokens=False)["input_ids"]
        assert ids == raw.encode(text, add_special_tokens=False).ids, text
        assert reloaded.decode(ids) == text, text


@pytest.mark.parametrize("fixture", ARCHS)
def test_special_tokens_and_think_tokens(fixture, request):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    for t in ("<think>", "</think>"):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.decode(ids) == t
    digits = tok("12345", add_special_tokens=False)["input_ids"]
    assert len(digits) == 5  # every digit its own token, as in Qwen2


@pytest.mark.parametrize("fixture", ARCHS)
def test_chat_template_renders_r1_format_with_generation_markers(fixture, request):
    from transformers import AutoTokenizer

    folder = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(folder)
    assert "{% generation %}" in tok.chat_template.replace("{%- generation %}", "{% generation %}")
    assert (folder / "chat_template.jinja").is_file()
    msgs = [{"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "<think>\n2+3=5\n</think>\n\n\\boxed{5}"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == ("<|begin_of_text|><|user|>What is 2 + 3?\n<|assistant|><think>\n2+3=5\n</think>\n\n"
                    "\\boxed{5}<|end_of_text|>")
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("<|assistant|>")
    forced = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True, force_think=True)
    assert forced.endswith("<|assistant|><think>\n")
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == "<think>\n2+3=5\n</think>\n\n\\boxed{5}<|end_of_text|>"
    assert masked[-1] == tok.eos_token_id


@pytest.mark.parametrize("fixture", ARCHS)
def test_model_reloads_offline_and_generates(fixture, request):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads == 64
    assert cfg.pad_token_id == tok.pad_token_id != cfg.eos_token_id
    assert cfg.vocab_size >= len(tok)
    ids = tok("What is 1 + 1?", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 5
    run = json.loads((folder / "run.json").read_text())
    assert run["stage"] == "tiny" and run["status"] == "complete" and run["counts"]["parameters"] > 0
    assert run["versions"]["transformers"]


def test_tiny_is_deterministic(tmp_path):
    from distill.stages.tiny.build import make_tiny
    from distill.stages.tiny.config import TinyConfig

    a = make_tiny(TinyConfig(out=str(tmp_path / "a"), layers=1, corpus_size=500))
    b = make_tiny(TinyConfig(out=str(tmp_path / "b"), layers=1, corpus_size=500))
    assert a == b
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "b" / "tokenizer.json").read_text()
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
