"""The student registry reads as a table and fails helpfully."""

from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.students import STUDENTS, get_student

PAPER_STUDENTS = {
    "qwen-1.5b": "Qwen/Qwen2.5-Math-1.5B", "qwen-7b": "Qwen/Qwen2.5-Math-7B", "llama-8b": "meta-llama/Llama-3.1-8B",
    "qwen-14b": "Qwen/Qwen2.5-14B", "qwen-32b": "Qwen/Qwen2.5-32B", "llama-70b": "meta-llama/Llama-3.3-70B-Instruct",
}


def test_registry_has_the_paper_students_and_tiny_ones():
    for name, hub in PAPER_STUDENTS.items():
        assert get_student(name).base_model == hub
        assert get_student(name).paper_aime24 is not None
    assert {"tiny-qwen", "tiny-llama"} <= set(STUDENTS)


@pytest.mark.parametrize("name,billions", [("qwen-1.5b", 1.54), ("qwen-7b", 7.62), ("llama-8b", 8.03),
                                           ("qwen-14b", 14.77), ("qwen-32b", 32.76), ("llama-70b", 70.55)])
def test_parameter_counts_match_the_published_sizes(name, billions):
    assert get_student(name).num_parameters() / 1e9 == pytest.approx(billions, rel=0.01)


def test_unknown_student_lists_valid_names():
    with pytest.raises(DistillError) as err:
        get_student("qwen-3b")
    assert "qwen-3b" in str(err.value) and "qwen-7b" in str(err.value) and "llama-70b" in str(err.value)


def test_tiny_rows_match_the_tiny_defaults():
    from distill.stages.tiny.config import TinyConfig

    cfg = TinyConfig()
    row = get_student("tiny-qwen")
    assert (row.layers, row.hidden, row.heads, row.kv_heads, row.intermediate, row.vocab) == (
        cfg.layers, cfg.hidden, cfg.heads, cfg.kv_heads, cfg.intermediate, cfg.vocab_size)
    assert row.head_dim == 64
