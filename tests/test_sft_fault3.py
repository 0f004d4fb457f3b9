"""Issue 16, fault 3: the process group must carry ``ddp_timeout``, and no rank may sit in a barrier while rank 0
tokenizes the whole dataset (on 800k long traces that outlasted the collective timeout).

Before the fix, ``distill sft`` made the process group (``PartialState()``) before ``SFTConfig``, with torch's default
timeout, and tokenized under ``main_process_first``: rank 0 alone, the others waiting at a barrier.
"""

from __future__ import annotations

import json

import pytest
from test_sft import rows


# ------------------------------------------------------------------------------------- in one process
@pytest.fixture
def tokenizer(tiny_qwen):
    from transformers import AutoTokenizer

    from distill.stages.sft.chat import install_chat_template, pick_format

    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    install_chat_template(tok, pick_format("auto", tok))
    return tok


@pytest.fixture
def counted(monkeypatch):
    """Rows tokenized in this process (datasets reads a share found in the cache without calling the function)."""
    import distill.stages.sft.data as data

    calls: list[int] = []
    real = data.encode_example

    def encode_example(example, index, **kw):
        calls.append(index + kw.get("offset", 0))
        return real(example, index, **kw)

    monkeypatch.setattr(data, "encode_example", encode_example)
    return calls


def test_shares_cover_every_row_once():
    from distill.stages.sft.data import shard_bounds

    for n, parts in [(16, 2), (10, 3), (3, 8), (0, 2)]:
        bounds = shard_bounds(n, parts)
        assert len(bounds) == parts and bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_ranks_tokenize_their_own_share_and_read_the_others_from_the_cache(tokenizer, counted, tmp_path):
    import datasets

    from distill.stages.sft.data import Ranks, encode_dataset

    ds = datasets.Dataset.from_list(rows(16))
    kw = dict(source="t", max_length=512, overlong="drop", assistant_only=True)
    alone, _ = encode_dataset(ds, tokenizer, cache_dir=tmp_path / "alone", **kw)
    counted.clear()

    # rank 1 first: it tokenizes rows 8-15, reaches the barrier, then finds no share of rank 0's in the cache (as
    # on another node's local disk) and tokenizes it too
    waited = []
    one, stats1 = encode_dataset(ds, tokenizer, cache_dir=tmp_path / "shared",
                                 ranks=Ranks(1, 2, lambda: waited.append(sorted(counted))), **kw)
    assert waited == [list(range(8, 16))]              # at the barrier it had done its own share, no more
    assert sorted(counted) == list(range(16)) and stats1.share_rows == 8
    counted.clear()
    # rank 0: every share is in the cache now
    zero, stats0 = encode_dataset(ds, tokenizer, cache_dir=tmp_path / "shared", ranks=Ranks(0, 2, lambda: None), **kw)
    assert counted == [] and stats0.share_rows == 8
    for got in (one, zero):
        assert got["input_ids"] == alone["input_ids"] and got["labels"] == alone["labels"]


def test_a_bad_row_in_a_later_share_is_named_by_its_row_in_the_dataset(tokenizer, tmp_path):
    import datasets

    from distill.errors import DataError
    from distill.stages.sft.data import Ranks, encode_dataset

    data = rows(16)
    data[11]["messages"] = data[11]["messages"][:1]          # no assistant turn
    with pytest.raises(DataError, match=r"row 11 \(id 'p11-0'\)"):
        encode_dataset(datasets.Dataset.from_list(data), tokenizer, source="t", max_length=512, overlong="drop",
                       assistant_only=True, cache_dir=tmp_path, ranks=Ranks(1, 2, lambda: None))


# ----------------------------------------------------------------------------------------- on 2 ranks
@pytest.mark.multiproc
def test_two_ranks_get_ddp_timeout_and_each_tokenizes_half(tiny_qwen, tmp_path, capfd, cpu_ranks):
    import datasets

    from distill.stages.sft.config import SFTStageConfig
    from distill.stages.sft.stage import run

    datasets.Dataset.from_list(rows(16)).save_to_disk(str(tmp_path / "data"))
    out = tmp_path / "student"
    run(SFTStageConfig(student="tiny-qwen", model=str(tiny_qwen), dataset=str(tmp_path / "data"), out=str(out),
                       max_length=256, learning_rate=3e-3, max_steps=2, per_device_train_batch_size=1,
                       gradient_accumulation_steps=1, gradient_checkpointing=False, logging_steps=1, save_steps=100,
                       num_processes=2, strategy="ddp", seed=0, ddp_timeout=321))
    logs = capfd.readouterr()
    rec = json.loads((out / "run.json").read_text())
    assert rec["status"] == "complete" and rec["world_size"] == 2
    # torch's default would be 1800 s (gloo) or 600 s (NCCL): the group the ranks trained in has the configured one
    assert rec["process_group_timeout_s"] == 321
    assert rec["config"]["ddp_timeout"] == 321
    # each rank tokenized its own half; neither waited for the other to tokenize everything
    assert rec["tokenize_shares"] == [8, 8]
    text = logs.out + logs.err
    assert "rank 0 of 2: tokenized its share, rows 0-7 (8 of 16)" in text
    assert "rank 1 of 2: tokenized its share, rows 8-15 (8 of 16)" in text
