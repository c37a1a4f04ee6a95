"""Tables of data in, and the query/answer pairs of the scorer and of the search out: the bundled demo pairs, any
local, ``hf://`` or Hub data (:func:`load_table`), chat cells in either turn convention, stored as lists or as JSON
strings (:func:`as_chat`), and Hub references (:func:`hub_id`).

The SFT stage reads its REER and public data with the same helpers (:mod:`~reer_hf.sft.trajectories`), so a chat the
synthesis reads as a query is the chat the SFT data reads as one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from reer_hf.core.text import strip_thinking

if TYPE_CHECKING:
    from datasets import Dataset

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEMO_PAIRS = ASSETS_DIR / "demo_pairs.jsonl"


def demo_pairs() -> list[dict[str, str]]:
    """The bundled query/answer pairs as ``{"id", "query", "answer"}`` dicts (sources: ``assets/NOTICE.md``)."""
    with DEMO_PAIRS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


DEMO_DATASET = "builtin:demo-pairs"
# Known pair shapes, tried in order when no columns are named: (query column, answer column).
_PAIR_SHAPES = (("query", "answer"), ("question", "answer"), ("prompt", "solution"), ("instruction", "output"))

#: File suffixes read by a builder of ``datasets`` (``parquet`` or ``json``) when a source names one file.
DATA_FILE_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def hub_id(ref: str | None) -> str | None:
    """``ref`` when it reads as a Hub repository id (``owner/name``) and is no local path or data file, else ``None``:
    the only references Hub metadata may name, and the only ones worth fetching from the Hub."""
    if not ref or Path(ref).exists() or Path(ref).suffix in (*DATA_FILE_SUFFIXES, ".csv"):
        return None
    return ref if _HUB_ID.fullmatch(ref) and not ref.startswith(".") else None


def _hf_path_at(path: str, revision: str | None) -> str:
    """An ``hf://datasets/<org>/<name>/<file>`` path pinned to ``revision``: a packaged builder fetches the file
    through ``HfFileSystem``, which reads the revision from the path (``@<rev>`` after the repository) only."""
    if revision is None:
        return path
    parts = path[len("hf://") :].split("/")
    if len(parts) < 4 or parts[0] != "datasets":
        raise ValueError(f"{path}: expected hf://datasets/<org>/<name>/<file> to pin a revision")
    if "@" in parts[2]:
        raise ValueError(f"{path} already names a revision: drop the revision option or the @ part of the path")
    parts[2] = f"{parts[2]}@{quote(revision, safe='')}"
    return "hf://" + "/".join(parts)


def load_table(
    source: str,
    config: str | None = None,
    split: str = "train",
    data_files: str | list[str] | None = None,
    revision: str | None = None,
) -> Dataset:
    """A ``datasets.Dataset`` from a local jsonl/json/parquet file, a ``save_to_disk`` folder, an ``hf://`` path to
    such a file or a glob of them (``datasets`` fetches it through ``HfFileSystem``; ``revision`` goes into the path),
    or a Hub id / local data folder, with ``data_files`` (the files listed make up ``split``) and ``revision`` passed
    on to ``load_dataset``. A single file's rows are all of it, whatever ``split`` says.

    An option the source cannot use fails rather than being ignored: an ``hf://`` path takes neither ``config`` nor
    ``data_files``; a single file or a saved folder takes none of ``config``, ``data_files`` and ``revision``.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    def refuse(what: str) -> None:
        options = (("config", config), ("data_files", data_files), ("revision", revision))
        given = [name for name, value in options if value]
        if given:
            raise ValueError(f"{source} is {what}, which would ignore {' and '.join(given)}: unset it")

    source = str(source)
    suffix = Path(source).suffix
    if source.startswith("hf://"):
        if suffix not in DATA_FILE_SUFFIXES:
            raise ValueError(
                f"{source}: an hf:// path must name a .parquet, .jsonl or .json file (or a glob of them); for a "
                "whole dataset repository pass its id, with data_files to pick files in it"
            )
        if data_files:
            raise ValueError(f"{source} names the data file itself: unset data_files")
        if config:
            raise ValueError(f"{source} names the data file itself, which has no config: unset config")
        return load_dataset(DATA_FILE_SUFFIXES[suffix], data_files=_hf_path_at(source, revision), split="train")
    path = Path(source)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        refuse("a save_to_disk folder")
        ds = load_from_disk(str(path))
        return ds[split] if isinstance(ds, DatasetDict) else ds
    if suffix in DATA_FILE_SUFFIXES:
        if not path.is_file():
            hint = " (the output of recipes/synthesize.py: run it first)" if path.name == "reer.parquet" else ""
            raise FileNotFoundError(f"{source} does not exist{hint}")
        refuse("a single file")
        return load_dataset(DATA_FILE_SUFFIXES[suffix], data_files=str(path), split="train")
    if isinstance(data_files, (list, tuple)):
        data_files = {split: list(data_files)}
    return load_dataset(source, config, data_files=data_files, revision=revision, split=split)


def _is_turn(value: Any) -> bool:
    return isinstance(value, dict) and (
        ("role" in value and "content" in value) or ("from" in value and "value" in value)
    )


def as_chat(value: Any) -> list[dict] | None:
    """A chat cell as its list of turns: a list as it is, or a string holding the JSON of a list of role/content (or
    from/value) turns, as some published files store their chats; ``None`` for anything else (plain text, even one
    that starts with ``[``)."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.lstrip().startswith("["):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if isinstance(decoded, list) and decoded and all(_is_turn(t) for t in decoded):
        return decoded
    return None


def turn_role(turn: dict) -> str | None:
    """A turn's role in either convention (``role`` / ``from``), lower-cased."""
    role = turn.get("role", turn.get("from"))
    return None if role is None else str(role).lower()


def turn_content(turn: dict) -> str | None:
    """A turn's text in either convention (``content`` / ``value``)."""
    return turn.get("content", turn.get("value"))


#: Roles of the turns that ask (a turn without a role counts as asking) and of those that answer, in either convention.
USER_ROLES = ("user", "human", None)
ASSISTANT_ROLES = ("assistant", "gpt")


def last_turn_text(chat: list, roles: tuple[str | None, ...]) -> str | None:
    """The text of the last turn of ``chat`` whose role is in ``roles``; ``None`` when there is none."""
    texts = [turn_content(t) for t in chat if isinstance(t, dict) and turn_role(t) in roles]
    return texts[-1] if texts else None


def query_text(value: Any) -> str | None:
    """A query cell as text: a string, or the last user turn of a chat list (or of a JSON string of one)."""
    chat = as_chat(value)
    if chat is None:
        return value if isinstance(value, str) else None
    return last_turn_text(chat, USER_ROLES)


def _pair_cell(value: Any, roles: tuple[str | None, ...]) -> Any:
    """A query/answer cell as text: the last turn of ``roles`` of a chat (a list of turns or its JSON string);
    anything else as it is (a string, or a value the scorer records as invalid input)."""
    chat = as_chat(value)
    if not chat or not all(isinstance(t, dict) for t in chat):
        return value
    return last_turn_text(chat, roles)


def load_pairs(
    source: str = DEMO_DATASET,
    split: str = "train",
    query_column: str | None = None,
    answer_column: str | None = None,
    max_rows: int | None = None,
    config: str | None = None,
    data_files: str | list[str] | None = None,
    revision: str | None = None,
) -> Dataset:
    """Query/answer pairs as a ``datasets.Dataset`` with ``query`` and ``answer`` columns (plus the source's others).

    ``source`` is the bundled demo or anything :func:`load_table` reads (a local, ``hf://`` or Hub source, with
    ``data_files`` and ``revision``). Columns are named, or recognised among the known shapes (query/answer,
    question/answer, prompt/solution, instruction/output, ``messages`` chats); a chat cell, stored as a list or as
    a JSON string, gives its last user turn as the query and its last assistant turn as the answer; thinking already
    in an answer is stripped.
    """
    from datasets import Dataset

    source = str(source)
    if source == DEMO_DATASET:
        options = (("config", config), ("data_files", data_files), ("revision", revision))
        given = [name for name, value in options if value]
        if given:
            raise ValueError(f"{source} is the bundled demo, which would ignore {' and '.join(given)}: unset it")
        ds = Dataset.from_list(demo_pairs())
    else:
        ds = load_table(source, config, split, data_files, revision)
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
            turns = as_chat(row["messages"]) or []
            answer = last_turn_text(turns, ASSISTANT_ROLES)
            return {"query": last_turn_text(turns, USER_ROLES), "answer": strip_thinking(answer) if answer else answer}

        return ds.map(from_messages, desc="pairs from messages")
    if shape is None:
        expected = ", ".join("/".join(s) for s in _PAIR_SHAPES)
        raise ValueError(f"Cannot find query/answer columns in {columns}; expected one of {expected} or messages")

    def normalise(row):
        query, answer = _pair_cell(row[shape[0]], USER_ROLES), _pair_cell(row[shape[1]], ASSISTANT_ROLES)
        return {"query": query, "answer": strip_thinking(answer) if isinstance(answer, str) else answer}

    return ds.map(normalise, desc="pairs")
