"""The benchmark data folder (a folder, a Hub dataset in the offline cache, the bundled copy) and the loaders, on the
few real rows of each file in tests/data/benchmarks; the full-data checks run when $REER_BENCHMARK_DATA is set."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from reer_hf.evaluation.benchmarks import load_items
from reer_hf.evaluation.benchmarks.data import DATA_ENV, benchmark_dir
from reer_hf.evaluation.benchmarks.hellobench import HELLOBENCH_TASKS, load_hellobench, load_hellobench_weights
from reer_hf.evaluation.benchmarks.longbench_write import load_longbench_write
from reer_hf.evaluation.benchmarks.writingbench import WRITINGBENCH_DOMAINS, load_writingbench

DATA = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
FULL = os.environ.get(DATA_ENV)
needs_full = pytest.mark.skipif(not FULL or not Path(FULL).is_dir(), reason=f"${DATA_ENV} names no data folder")


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


def test_builtin_longbench_data_ships_with_the_package():
    items = load_items("longbench_write", "builtin")
    assert len(items) == 120 and sum(it["lang"] == "zh" for it in items) == 61
    assert len(load_items("longbench_write", "builtin", longbench_subset="en")) == 60
    with pytest.raises(FileNotFoundError, match="layout"):
        load_items("hellobench", "builtin")


def check_longbench_write(root: Path, sizes: tuple[int, int, int]) -> None:
    rows = load_longbench_write(root)
    assert len(rows) == sizes[0] and set(rows[0]) >= {"prompt", "type", "length"}
    assert len(load_longbench_write(root, "en")) == sizes[1] and len(load_longbench_write(root, "ruler")) == sizes[2]
    assert all(100 <= r["length"] <= 20000 for r in rows)


def check_hellobench(root: Path, sizes: dict[str, int]) -> None:
    weights = load_hellobench_weights(root)
    for task in HELLOBENCH_TASKS:
        rows = load_hellobench(root, task)
        assert len(rows) == sizes[task]
        for row in rows:
            assert len(weights[row["category"]]) == row["num_checklist"] == len(row["checklists"])
    assert len(load_hellobench(root, "heuristic_text_generation_4k")) == sizes["heuristic_text_generation"]
    for w in weights.values():
        assert sum(w) == pytest.approx(100.0, abs=1e-6)


def check_writingbench(root: Path) -> list[dict]:
    rows = load_writingbench(root)
    assert all(len(r["checklist"]) == 5 for r in rows)
    style = load_writingbench(root, "style")
    assert 0 < len(style) < len(rows) and all(len(r["checklist"]) == 5 for r in style)
    style_c = load_writingbench(root, "style", subset_criteria=True)
    assert [r["index"] for r in style_c] == [r["index"] for r in style]
    assert all(1 <= len(r["checklist"]) <= 5 for r in style_c)
    assert sum(len(r["checklist"]) for r in style_c) < 5 * len(style)
    return rows


def test_load_longbench_write():
    check_longbench_write(DATA, (4, 2, 2))
    assert [it["lang"] for it in load_items("longbench_write", DATA)] == ["en", "en", "zh", "zh"]


def test_load_hellobench_and_weights_match():
    sizes = dict.fromkeys(HELLOBENCH_TASKS, 2) | {"heuristic_text_generation": 3}
    check_hellobench(DATA, sizes)
    items = load_items("hellobench", DATA, hellobench_tasks=["open_ended_qa", "chat"], max_items=1)
    assert [it["id"] for it in items] == ["hellobench/open_ended_qa/open_ended_qa_011", "hellobench/chat/chat_112"]
    assert all(it["checklists"] and it["category"] for it in items)


def test_load_writingbench():
    rows = check_writingbench(DATA)
    assert sorted(r["domain1"] for r in rows) == sorted(WRITINGBENCH_DOMAINS.values())  # one query per domain
    assert [r["index"] for r in load_writingbench(DATA, "style")] == [202, 428]
    (item,) = load_items("writingbench", DATA, writingbench_subset="length")
    assert item["id"] == "writingbench/140" and item["task"] == "length"
    assert [c["name"] for c in item["criteria"]] == ["Ceremonial_Appropriateness"]


@needs_full
def test_full_data():
    root = Path(FULL)
    check_longbench_write(root, (120, 60, 48))
    sizes = {"open_ended_qa": 200, "summarization": 100, "chat": 147, "text_completion": 77}
    check_hellobench(root, sizes | {"heuristic_text_generation": 123})
    rows = check_writingbench(root)
    counts = Counter(r["domain1"] for r in rows)
    assert len(rows) == 1000 and counts[WRITINGBENCH_DOMAINS["A"]] == 167 and counts[WRITINGBENCH_DOMAINS["F"]] == 128
