"""Loading pairs: the bundled demo, local files of the known shapes, clear errors."""

from __future__ import annotations

import pytest
from testing_utils import write_jsonl

from reer_hf.core.data import demo_pairs, load_pairs
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
