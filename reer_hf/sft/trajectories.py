"""REER data in, conversations out: recognising a table's shape, its rows as ``query`` / ``thinking`` / ``answer``
trajectories, and those as ``messages``. Tables are read and chat cells decoded by :mod:`reer_hf.core.data` (the
synthesis reads its pairs with the same code); ``load_table``, ``as_chat`` and ``DATA_FILE_SUFFIXES`` are re-exported
here.

Both the REER data and REER-shaped public data go through here, so the two sides of a mixture are converted by the
same code (:mod:`~reer_hf.sft.mixture` builds on it; :mod:`~reer_hf.sft.data` runs the pipeline).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from reer_hf.core.data import (
    ASSISTANT_ROLES,
    DATA_FILE_SUFFIXES,
    as_chat,
    last_turn_text,
    load_table,
    query_text,
)
from reer_hf.core.formats import to_messages
from reer_hf.core.text import split_thinking

if TYPE_CHECKING:
    from datasets import Dataset, Features

__all__ = [
    "DATA_FILE_SUFFIXES",
    "REER_SHAPES",
    "as_chat",
    "detect_shape",
    "load_table",
    "messages_features",
    "to_trajectories",
    "trajectories_to_messages",
]

#: Known shapes of REER data, tried in order: name -> columns that must all be present.
REER_SHAPES: dict[str, tuple[str, ...]] = {
    "synthesis": ("query", "answer", "z_star"),  # recipes/synthesize.py output (also has z0, status, messages)
    "prompt_solution": ("prompt", "solution"),  # m-a-p/DeepWriting-20K as third-party loaders describe it
    "question_solution": ("question", "solution"),
    "messages": ("messages",),  # a chat whose last assistant turn holds <think>...</think> then the answer
}


def messages_features() -> Features:
    """The one schema of every converted row, so REER and public rows concatenate without a cast error."""
    from datasets import Features, List, Value

    return Features({"messages": List({"role": Value("string"), "content": Value("string")})})


def detect_shape(columns: list[str], shapes: dict[str, tuple[str, ...]] = REER_SHAPES, what: str = "REER data") -> str:
    """The first shape of ``shapes`` whose columns are all in ``columns``; otherwise a ``ValueError`` that names the
    columns found and the ones expected, so a wrong file fails before any conversion."""
    for name, needed in shapes.items():
        if set(needed) <= set(columns):
            return name
    expected = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in shapes.items())
    raise ValueError(
        f"Unrecognised {what}: its columns are {sorted(columns)}; expected one of these shapes: {expected}"
    )


def _solution_parts(solution: str) -> tuple[str | None, str | None, str]:
    """The thinking and answer of a solution text, or the reason to drop it: no markers at all, or a thinking that
    was opened and never closed (a reply cut by its token limit holds no answer to train on)."""
    parts = split_thinking(solution)
    if parts.thinking is None:
        return None, None, "no_thinking"
    if not parts.finished:
        return None, None, "unfinished_thinking"
    return parts.thinking, parts.answer, ""


def _trajectory_batch(batch: dict, shape: str, thinking_column: str, keep_status: str | None) -> dict:
    """Rows of any REER shape as ``query`` / ``thinking`` / ``answer`` plus ``_drop`` (the reason, or empty)."""
    n = len(next(iter(batch.values())))
    out: dict[str, list] = {"query": [], "thinking": [], "answer": [], "_drop": []}
    for i in range(n):
        drop, thinking, answer = "", None, None
        if shape == "synthesis":
            query, answer, thinking = batch["query"][i], batch["answer"][i], batch[thinking_column][i]
            status = batch["status"][i] if "status" in batch else None
            if keep_status and status is not None and status != keep_status:
                drop = f"status={status}"
        else:
            if shape == "messages":
                cell = batch["messages"][i]
                turns = as_chat(cell) or []
                query = query_text(turns)
                solution = last_turn_text(turns, ASSISTANT_ROLES) or ""
                if cell and not turns:
                    drop = "not_a_chat"
            else:
                query = query_text(batch["prompt" if shape == "prompt_solution" else "question"][i])
                solution = batch["solution"][i] or ""
            if not drop:
                thinking, answer, drop = _solution_parts(solution)
        if not drop and not (query or "").strip():
            drop = "empty_query"
        elif not drop and not (thinking or "").strip():
            drop = "empty_thinking"
        elif not drop and not (answer or "").strip():
            drop = "empty_answer"
        out["query"].append(query or "")
        out["thinking"].append((thinking or "").strip())
        out["answer"].append((answer or "").strip())
        out["_drop"].append(drop)
    return out


def to_trajectories(
    ds: Dataset,
    shape: str,
    no_search: bool = False,
    keep_status: str | None = "ok",
    category_column: str | None = None,
    source: str = "the REER data",
) -> tuple[Dataset, Counter]:
    """``ds`` as ``query`` / ``thinking`` / ``answer`` rows (plus ``category`` when ``category_column`` is in the
    data), and the count of the rows dropped per reason (``status=...``, ``no_thinking``, ``unfinished_thinking``,
    ``empty_*``), so the report can say why the data shrank."""
    thinking_column = "z_star"
    if no_search:
        if shape != "synthesis" or "z0" not in ds.column_names:
            raise ValueError(
                f"ablation_no_search trains on z0, the trajectory before the iterative search, but {source} holds "
                f"only the refined one (columns: {sorted(ds.column_names)}). Use the output of recipes/synthesize.py "
                "(reer.parquet, its dataset/ folder or its Hub upload), which keeps both z0 and z_star."
            )
        thinking_column = "z0"
    keep = [category_column] if category_column and category_column in ds.column_names else []
    converted = ds.map(
        _trajectory_batch,
        batched=True,
        fn_kwargs={"shape": shape, "thinking_column": thinking_column, "keep_status": keep_status},
        remove_columns=[c for c in ds.column_names if c not in keep],
        desc="trajectories",
    )
    if keep and category_column != "category":
        converted = converted.rename_column(category_column, "category")
    drops = Counter(r for r in converted["_drop"] if r)
    converted = converted.filter(lambda r: not r, input_columns="_drop").remove_columns("_drop")
    return converted, drops


def _user_turn(query: str, template: str | None) -> str:
    if not template:
        return query
    from reer_hf.core.prompts import render
    from reer_hf.core.text import detect_language

    return render(template, detect_language(query), query=query)


def _messages_batch(batch: dict, system_prompt: str | None, user_template: str | None, assistant_format: str) -> dict:
    rows = [
        to_messages(_user_turn(query, user_template), thinking, answer, system_prompt, assistant_format)
        for query, thinking, answer in zip(batch["query"], batch["thinking"], batch["answer"], strict=True)
    ]
    return {"messages": rows}


def trajectories_to_messages(
    ds: Dataset, system_prompt: str | None, assistant_format: str, user_template: str | None = None
) -> Dataset:
    """``query`` / ``thinking`` / ``answer`` rows as a ``messages`` column (the only column left)."""
    return ds.map(
        _messages_batch,
        batched=True,
        fn_kwargs={
            "system_prompt": system_prompt,
            "user_template": user_template,
            "assistant_format": assistant_format,
        },
        remove_columns=ds.column_names,
        features=messages_features(),
        desc="messages",
    )
