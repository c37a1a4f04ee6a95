"""Query/answer pairs, the input of the scorer and of the search: the bundled demo pairs and any local or Hub data."""

from __future__ import annotations

import json
from pathlib import Path

from reer_hf.core.text import strip_thinking

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEMO_PAIRS = ASSETS_DIR / "demo_pairs.jsonl"


def demo_pairs() -> list[dict[str, str]]:
    """The bundled query/answer pairs as ``{"id", "query", "answer"}`` dicts (sources: ``assets/NOTICE.md``)."""
    with DEMO_PAIRS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


DEMO_DATASET = "builtin:demo-pairs"
# Known pair shapes, tried in order when no columns are named: (query column, answer column).
_PAIR_SHAPES = (("query", "answer"), ("question", "answer"), ("prompt", "solution"), ("instruction", "output"))


def _text_of(value) -> str | None:
    """A query/answer cell as text: a string, or the last user/assistant turn of a chat list."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        return value[-1].get("content")
    return value  # left as is; the scorer records it as invalid input


def load_pairs(
    source: str = DEMO_DATASET,
    split: str = "train",
    query_column: str | None = None,
    answer_column: str | None = None,
    max_rows: int | None = None,
    config: str | None = None,
):
    """Query/answer pairs as a ``datasets.Dataset`` with ``query`` and ``answer`` columns (plus the source's others).

    ``source`` is the bundled demo, a local jsonl/json/parquet file, or a Hub dataset id. Columns are named, or
    recognised among the known shapes (query/answer, question/answer, prompt/solution, instruction/output,
    ``messages`` chats); thinking already in an answer is stripped.
    """
    from datasets import Dataset, load_dataset

    source = str(source)
    if source == DEMO_DATASET:
        ds = Dataset.from_list(demo_pairs())
    elif Path(source).suffix in (".jsonl", ".json", ".parquet"):
        builder = "parquet" if source.endswith(".parquet") else "json"
        ds = load_dataset(builder, data_files=source, split="train")
    else:
        ds = load_dataset(source, config, split=split)
    if max_rows is not None:
        ds = ds.select(range(min(max_rows, len(ds))))
    columns = ds.column_names
    if query_column or answer_column:
        missing = [c for c in (query_column, answer_column) if c not in columns]
        if missing or not (query_column and answer_column):
            raise ValueError(f"Columns {missing or [query_column, answer_column]} not found; the data has {columns}")
        shape = (query_column, answer_column)
    else:
        shape = next((s for s in _PAIR_SHAPES if set(s) <= set(columns)), None)
    if shape is None and "messages" in columns:

        def from_messages(row):
            turns = row["messages"] or []
            users = [m["content"] for m in turns if m.get("role") == "user"]
            replies = [m["content"] for m in turns if m.get("role") == "assistant"]
            answer = replies[-1] if replies else None
            return {"query": users[-1] if users else None, "answer": strip_thinking(answer) if answer else answer}

        return ds.map(from_messages, desc="pairs from messages")
    if shape is None:
        expected = ", ".join("/".join(s) for s in _PAIR_SHAPES)
        raise ValueError(f"Cannot find query/answer columns in {columns}; expected one of {expected} or messages")

    def normalise(row):
        query, answer = _text_of(row[shape[0]]), _text_of(row[shape[1]])
        return {"query": query, "answer": strip_thinking(answer) if isinstance(answer, str) else answer}

    return ds.map(normalise, desc="pairs")
