"""Durable shards: a crash leaves at most a partial last line, which readers report and writers repair."""

from __future__ import annotations

import json

from distill.data.jsonl import ReadReport, ShardWriter, iter_jsonl, read_jsonl


def test_roundtrip_and_append(tmp_path):
    p = tmp_path / "s.jsonl"
    with ShardWriter(p) as w:
        w.write_rows([{"id": "a", "x": "ü"}, {"id": "b"}])
    with ShardWriter(p) as w:
        w.write_rows([{"id": "c"}])
    assert [r["id"] for r in read_jsonl(p)] == ["a", "b", "c"]


def test_partial_tail_is_reported_then_truncated_on_reopen(tmp_path):
    p = tmp_path / "s.jsonl"
    with ShardWriter(p) as w:
        w.write_rows([{"id": "a"}, {"id": "b"}])
    with p.open("a") as fh:
        fh.write('{"id": "c", "compl')  # a write interrupted by kill -9
    report = ReadReport()
    assert [r["id"] for r in read_jsonl(p, report)] == ["a", "b"]
    assert len(report.bad) == 1 and report.bad[0].line == 3 and "partial" in report.bad[0].reason
    with ShardWriter(p) as w:
        w.write_rows([{"id": "d"}])
    report = ReadReport()
    assert [r["id"] for r in read_jsonl(p, report)] == ["a", "b", "d"]
    assert report.bad == []


def test_corrupt_lines_are_named_with_file_and_line(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"id": 1}) + "\nnot json\n[1, 2]\n\n" + json.dumps({"id": 2}) + "\n")
    report = ReadReport()
    rows = list(iter_jsonl(p, report))
    assert [(n, r["id"]) for n, r in rows] == [(1, 1), (5, 2)]
    assert [(b.line, b.reason.split(" (")[0]) for b in report.bad] == [(2, "not valid JSON"), (3, "expected a JSON object, got list")]
    assert str(p) in report.summary() and "2 bad line(s)" in report.summary()


def test_file_without_final_newline_still_reads(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"id": 1}\n{"id": 2}')
    assert [r["id"] for r in read_jsonl(p)] == [1, 2]


def test_a_line_that_is_not_utf8_is_reported_not_raised(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n{"id": "c"}\n')
    report = ReadReport()
    assert [r["id"] for r in read_jsonl(path, report)] == ["a", "c"]
    assert len(report.bad) == 1 and report.bad[0].line == 2 and "not valid JSON" in report.bad[0].reason
