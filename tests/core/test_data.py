"""Loading pairs: the bundled demo, local files of the known shapes, clear errors."""

from __future__ import annotations

import pytest
from testing_utils import write_jsonl

from reer_hf.core.data import demo_pairs, hub_id, load_pairs
from reer_hf.core.segment import segment
from reer_hf.core.text import strip_thinking


def test_bundled_demo_pairs():
    pairs = demo_pairs()
    assert 5 <= len(pairs) <= 10
    for pair in pairs:
        assert set(pair) == {"id", "query", "answer"}
        assert len(segment(pair["answer"])) >= 3  # enough segments for the search and the scorer's context
    assert len(load_pairs()) == len(pairs)


def test_local_shapes(tmp_path):
    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "Q"},
                    {"role": "assistant", "content": "<think>old</think>\n\nA"},
                ]
            }
        ],
    )
    ds = load_pairs(chats)
    assert (ds[0]["query"], ds[0]["answer"]) == ("Q", "A")
    r1 = write_jsonl(
        tmp_path / "r1.jsonl",
        [{"prompt": [{"role": "user", "content": "Q2"}], "solution": "<think>a</think>b</think>\nThe answer."}],
    )
    assert load_pairs(r1)[0]["answer"] == "The answer."
    custom = write_jsonl(tmp_path / "c.jsonl", [{"ask": "Q3", "reply": "A3"}])
    assert load_pairs(custom, query_column="ask", answer_column="reply")[0]["query"] == "Q3"
    with pytest.raises(ValueError, match=r"\['ask', 'reply'\]"):
        load_pairs(custom)
    with pytest.raises(ValueError, match="not found"):
        load_pairs(custom, query_column="ask", answer_column="nope")


def test_strip_thinking():
    assert strip_thinking("<think>x</think>\n y ") == "y"
    assert strip_thinking("plain") == "plain"


def test_chats_stored_as_json_strings(tmp_path):
    """A DeepWriting-style ``prompt`` cell holding a chat's JSON gives its user turn as the query, never the JSON."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    chat = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write a poem."}])
    rows = {
        "prompt": [chat, "Write a story.", "[not json] Write a list."],
        "solution": ["<think>t</think>\n\nA poem.", "A story.", json.dumps([{"from": "gpt", "value": "A list."}])],
    }
    path = tmp_path / "dw.parquet"
    pq.write_table(pa.table(rows), path)
    ds = load_pairs(str(path))
    assert ds["query"] == ["Write a poem.", "Write a story.", "[not json] Write a list."]
    assert ds["answer"] == ["A poem.", "A story.", "A list."]
    messages = write_jsonl(
        tmp_path / "m.jsonl",
        [{"messages": json.dumps([{"from": "human", "value": "Q"}, {"from": "gpt", "value": "<think>x</think>A"}])}],
    )
    assert (load_pairs(messages)[0]["query"], load_pairs(messages)[0]["answer"]) == ("Q", "A")


def test_load_pairs_refuses_options_a_source_would_ignore(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"query": "Q", "answer": "A"}])
    with pytest.raises(ValueError, match="single file.*revision"):
        load_pairs(path, revision="v1")
    with pytest.raises(ValueError, match="bundled demo.*data_files"):
        load_pairs(data_files=["x.parquet"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pairs(str(tmp_path / "missing.parquet"))
    with pytest.raises(ValueError, match="hf:// path must name"):
        load_pairs("hf://datasets/acme/pairs")


def test_load_pairs_passes_data_files_and_revision(monkeypatch):
    import datasets

    calls = []

    def fake(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return datasets.Dataset.from_list([{"question": "Q", "answer": "A"}])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    ds = load_pairs("acme/pairs", "test", data_files=["a.parquet"], revision="v2", config="en")
    assert calls == [("acme/pairs", "en", {"data_files": {"test": ["a.parquet"]}, "revision": "v2", "split": "test"})]
    assert ds[0]["query"] == "Q"


def test_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "dir").mkdir()
    assert hub_id("acme/pairs") == "acme/pairs"
    for ref in (None, "", "local/dir", "acme/pairs.parquet", "acme/pairs.csv", "./x", "../x", "a/b/c", "pairs"):
        assert hub_id(ref) is None, ref


def test_a_config_the_source_cannot_use_is_refused(tmp_path):
    """A single file, an hf:// file path and the bundled demo have no configs: naming one fails instead of being
    ignored."""
    from reer_hf.core.data import DEMO_DATASET, load_pairs, load_table

    single = tmp_path / "pairs.jsonl"
    single.write_text('{"query": "q", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="config"):
        load_table(str(single), config="default")
    with pytest.raises(ValueError, match="config"):
        load_table("hf://datasets/m-a-p/DeepWriting-20K/deepwriting20k.parquet", config="default")
    with pytest.raises(ValueError, match="config"):
        load_pairs(DEMO_DATASET, config="default")
    assert load_table(str(single))["query"] == ["q"]
