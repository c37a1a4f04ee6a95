"""Benchmark scoring on crafted judgements against hand-computed numbers, the judge-reply parsers, and the loaders
(on ../shared/data/benchmarks when it is there)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from reer_hf.evaluation.benchmarks import (
    DATA_ENV,
    HELLOBENCH_TASKS,
    LONGBENCH_QUALITY_DIMENSIONS,
    WRITINGBENCH_DOMAINS,
    aggregate_hellobench,
    aggregate_longbench_write,
    aggregate_writingbench,
    benchmark_dir,
    hellobench_item_score,
    hellobench_rescale,
    load_hellobench,
    load_hellobench_weights,
    load_longbench_write,
    load_writingbench,
    parse_hellobench_checklist,
    parse_longbench_quality,
    parse_writingbench_score,
)
from reer_hf.evaluation.judge import Judgement

SHARED = Path(os.environ.get(DATA_ENV, Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"))
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no benchmark data at {SHARED}")


# ---- HelloBench ----


def checklist_reply(grades: dict[int, float]) -> str:
    entries = [{"checklist_id": i, "reason": "because", "evaluation_score": g} for i, g in grades.items()]
    return "Evaluation:\n```json\n" + json.dumps(entries) + "\n```"


def test_parse_hellobench_checklist_orders_by_id():
    assert parse_hellobench_checklist(checklist_reply({2: 0.25, 0: 1, 1: 0.5}), 3) == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(
    ("grades", "match"),
    [
        ({0: 1, 1: 0.3}, "not one of"),  # not a grade
        ({0: 1}, "missing"),
        ({0: 1, 1: 1, 2: 1}, "bad or repeated"),  # id out of range
        ({0: True, 1: 1}, "not one of"),
    ],
)
def test_parse_hellobench_checklist_rejects(grades, match):
    with pytest.raises(ValueError, match=match):
        parse_hellobench_checklist(checklist_reply(grades), 2)
    with pytest.raises(ValueError, match="no JSON list"):
        parse_hellobench_checklist('{"checklist_id": 0}', 1)


def hb(id_: str, task: str, grades: list[float] | None) -> Judgement:
    meta = {"task": task, "category": "x"}
    if grades is None:
        return Judgement(id_, False, error="unparsable", error_kind="parse", meta=meta)
    return Judgement(id_, True, grades, meta=meta)


def test_hellobench_scores_hand_computed():
    weights = {"x": [10.0, 20.0, 30.0, 40.0]}
    assert hellobench_item_score([1, 0.5, 0.25, 0.75], weights["x"]) == pytest.approx(57.5)  # 10 + 10 + 7.5 + 30
    assert hellobench_rescale(73.75) == pytest.approx(-5.0)
    with pytest.raises(ValueError, match="4 checklist weights"):
        hellobench_item_score([1, 1], weights["x"])
    out = aggregate_hellobench(
        [
            hb("a", "chat", [1, 0.5, 0.25, 0.75]),  # 57.5
            hb("b", "chat", [1, 1, 1, 0.75]),  # 90
            hb("c", "chat", None),  # failed: out of the mean, counted
            hb("d", "open_ended_qa", [1, 1, 1, 1]),  # 100
        ],
        weights,
    )
    chat = out["chat"]
    assert chat["score"] == pytest.approx(73.75) and chat["rescaled"] == pytest.approx(-5.0)
    assert (chat["n"], chat["n_ok"], chat["n_failed"]) == (3, 2, 1)
    assert chat["items"] == {"a": pytest.approx(57.5), "b": pytest.approx(90.0), "c": None}
    assert out["open_ended_qa"]["score"] == pytest.approx(100.0)
    assert out["open_ended_qa"]["rescaled"] == pytest.approx(100.0)
    only_failed = aggregate_hellobench([hb("c", "chat", None)], weights)["chat"]
    assert only_failed["score"] is None and only_failed["rescaled"] is None and only_failed["n_failed"] == 1


# ---- WritingBench ----


@pytest.mark.parametrize(
    ("text", "score"),
    [('{"score": 7, "reason": "ok"}', 7), ('<think>{"score": 1}</think>{"score": 10}', 10), ('{"score": 6.0}', 6)],
)
def test_parse_writingbench_score(text, score):
    assert parse_writingbench_score(text) == score


@pytest.mark.parametrize("text", ['{"score": 0}', '{"score": 11}', '{"score": 6.5}', '{"reason": "x"}', "seven"])
def test_parse_writingbench_score_rejects(text):
    with pytest.raises(ValueError):
        parse_writingbench_score(text)


def wb(index: int, domain: str, scores: list[int | None]) -> list[Judgement]:
    out = []
    for k, s in enumerate(scores):
        meta = {"index": index, "domain1": WRITINGBENCH_DOMAINS[domain], "criterion": f"c{k}"}
        ok = s is not None
        out.append(
            Judgement(f"{index}/c{k}", ok, s, error=None if ok else "x", error_kind=None if ok else "http", meta=meta)
        )
    return out


def test_writingbench_scores_hand_computed():
    out = aggregate_writingbench(
        wb(1, "A", [6, 7, 8, 9, 10])  # 8.0
        + wb(2, "A", [5, 5, 5, 5, 5])  # 5.0
        + wb(3, "D", [10, 9, None, 7, 6])  # a failed criterion: no score, counted
        + wb(4, "D", [4, 4, 4, 4, 3])  # 3.8
        + wb(5, "F", [9, 9, 9, 9])  # only 4 of 5 criteria judged: no score
    )
    a, d, f = out["domains"]["A"], out["domains"]["D"], out["domains"]["F"]
    assert a["score"] == pytest.approx(6.5) and a["score_x10"] == pytest.approx(65.0)
    assert (a["n"], a["n_ok"], a["n_failed"]) == (2, 2, 0)
    assert d["score"] == pytest.approx(3.8) and d["score_x10"] == pytest.approx(38.0)
    assert (d["n"], d["n_ok"], d["n_failed"]) == (2, 1, 1)
    assert f["score"] is None and f["score_x10"] is None and f["n_failed"] == 1
    assert set(out["domains"]) == {"A", "D", "F"}
    overall = out["overall"]
    assert overall["score"] == pytest.approx((8 + 5 + 3.8) / 3) and overall["score_x10"] == pytest.approx(56.0)
    assert (overall["n"], overall["n_ok"], overall["n_failed"]) == (5, 3, 2)
    q3 = out["queries"][3]
    assert q3["score"] is None and q3["failed_criteria"] == ["c2"]
    assert q3["criteria"] == {"c0": 10, "c1": 9, "c2": None, "c3": 7, "c4": 6}


# ---- loaders ----


def test_benchmark_dir_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV):
        benchmark_dir()
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert benchmark_dir() == tmp_path


def test_benchmark_dir_from_a_hub_dataset_in_the_offline_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # so that "acme/bench" is no folder here
    with pytest.raises(FileNotFoundError, match="Hub dataset"):
        benchmark_dir("acme/bench")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "datasets--acme--bench"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "longbench_write_en.jsonl").write_text(json.dumps({"prompt": "p", "type": "t", "length": 500}) + "\n")
    assert benchmark_dir("acme/bench") == snapshot
    assert load_longbench_write("acme/bench", "en") == [{"prompt": "p", "type": "t", "length": 500}]


def test_loaders_reject_unknown_subsets(tmp_path):
    with pytest.raises(ValueError, match="subset"):
        load_longbench_write(tmp_path, "zh")
    with pytest.raises(ValueError, match="task"):
        load_hellobench(tmp_path, "poetry")
    with pytest.raises(ValueError, match="needs a subset"):
        (tmp_path / "writingbench").mkdir()
        (tmp_path / "writingbench" / "benchmark_all.jsonl").write_text("")
        load_writingbench(tmp_path, subset_criteria=True)


@needs_shared
def test_load_longbench_write():
    rows = load_longbench_write(SHARED)
    assert len(rows) == 120 and set(rows[0]) >= {"prompt", "type", "length"}
    assert len(load_longbench_write(SHARED, "en")) == 60 and len(load_longbench_write(SHARED, "ruler")) == 48
    assert all(100 <= r["length"] <= 20000 for r in rows)


@needs_shared
def test_load_hellobench_and_weights_match():
    weights = load_hellobench_weights(SHARED)
    sizes = {"open_ended_qa": 200, "summarization": 100, "chat": 147, "text_completion": 77}
    sizes["heuristic_text_generation"] = 123
    for task in HELLOBENCH_TASKS:
        rows = load_hellobench(SHARED, task)
        assert len(rows) == sizes[task]
        for row in rows:
            assert len(weights[row["category"]]) == row["num_checklist"] == len(row["checklists"])
    assert len(load_hellobench(SHARED, "heuristic_text_generation_4k")) == 123
    for w in weights.values():
        assert sum(w) == pytest.approx(100.0, abs=1e-6)


@needs_shared
def test_load_writingbench():
    rows = load_writingbench(SHARED)
    assert len(rows) == 1000 and all(len(r["checklist"]) == 5 for r in rows)
    counts = Counter(r["domain1"] for r in rows)
    assert counts[WRITINGBENCH_DOMAINS["A"]] == 167 and counts[WRITINGBENCH_DOMAINS["F"]] == 128
    style = load_writingbench(SHARED, "style")
    assert 0 < len(style) < 1000 and all(len(r["checklist"]) == 5 for r in style)
    style_c = load_writingbench(SHARED, "style", subset_criteria=True)
    assert [r["index"] for r in style_c] == [r["index"] for r in style]
    assert all(1 <= len(r["checklist"]) <= 5 for r in style_c)
    assert sum(len(r["checklist"]) for r in style_c) < 5 * len(style)


# ---- LongBench-Write quality ----


def test_parse_longbench_quality():
    ratings = dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 4)
    reply = "Scores:\n```json\n" + json.dumps({**ratings, "Accuracy": 2, "Comment": "fine"}) + "\n```"
    assert parse_longbench_quality(reply) == {**dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 4.0), "Accuracy": 2.0}
    for bad in ({**ratings, "Clarity": 6}, {**ratings, "Clarity": "5"}, {k: 3 for k in list(ratings)[:5]}):
        with pytest.raises(ValueError, match="rating 1-5"):
            parse_longbench_quality(json.dumps(bad))


def test_longbench_write_quality_hand_computed():
    top = dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 5.0)
    mid = {**dict.fromkeys(LONGBENCH_QUALITY_DIMENSIONS, 3.0), "Accuracy": 1.0}
    out = aggregate_longbench_write(
        [
            Judgement("0", True, top),
            Judgement("1", True, mid),
            Judgement("2", False, error="x", error_kind="parse"),
        ],
        length_score=80.0,
    )
    # dimension means: 4 (-> 75) for five dimensions, Accuracy 3 (-> 50)
    assert out["dimensions"]["Accuracy"] == pytest.approx(50.0) and out["dimensions"]["Clarity"] == pytest.approx(75.0)
    assert out["quality_score"] == pytest.approx((5 * 75 + 50) / 6)
    assert out["score"] == pytest.approx((80 + (5 * 75 + 50) / 6) / 2)
    assert (out["n"], out["n_ok"], out["n_failed"], out["failed_ids"]) == (3, 2, 1, ["2"])
    empty = aggregate_longbench_write([Judgement("2", False, error="x", error_kind="http")], length_score=80.0)
    assert empty["quality_score"] is None and empty["score"] is None and empty["dimensions"] == {}
