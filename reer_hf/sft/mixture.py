"""The public reasoning data of the paper's mixture (OpenThoughts) as ``messages``: a seeded sample of its rows,
converted to our output format, then concatenated after the REER rows.

TRL's ``DatasetMixtureConfig`` / ``get_dataset`` concatenates the sources' raw columns and takes the first rows of
each, so it fits neither sources of different shapes (DeepWriting-20K's prompt/solution, OpenThoughts'
conversations) nor a seeded sample; here both sides are converted to ``messages`` first, then concatenated with
``datasets.concatenate_datasets``. Only the sampled public rows are converted (17K of OpenThoughts' 114K in the
paper's run), topped up from the rest of the same seeded order when conversion drops some.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING

from reer_hf.core.data import as_chat, turn_content, turn_role
from reer_hf.core.formats import format_assistant
from reer_hf.core.text import split_thinking
from reer_hf.sft.trajectories import (
    REER_SHAPES,
    detect_shape,
    messages_features,
    to_trajectories,
    trajectories_to_messages,
)

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["PUBLIC_CHAT_SHAPES", "mix_datasets", "public_to_messages", "public_wanted", "sample_public"]

logger = logging.getLogger(__name__)

#: Known shapes of the public reasoning data: chats, or any of the REER shapes.
PUBLIC_CHAT_SHAPES: dict[str, tuple[str, ...]] = {"messages": ("messages",), "conversations": ("conversations",)}

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _chat_batch(batch: dict, column: str, system_prompt: str | None, assistant_format: str) -> dict:
    """Chats in our roles and output format, plus ``_drop``: ``not_a_chat`` for a cell that holds no chat,
    ``no_assistant_turn``, or ``unfinished_thinking`` for an assistant turn whose thinking never closes (training on
    it would teach the model never to answer)."""
    rows, drops = [], []
    for cell in batch[column]:
        chat = [{"role": "system", "content": system_prompt}] if system_prompt else []
        turns = as_chat(cell)
        drop = "not_a_chat" if cell and turns is None else ""
        for turn in turns or []:
            role = _ROLES.get(turn_role(turn) or "")
            content = turn_content(turn) or ""
            if role is None or role == "system":
                continue  # the source's own system turn (OpenThoughts': its marker format) gives way to ours
            if role == "assistant":
                parts = split_thinking(content)
                if not parts.finished:
                    drop = drop or "unfinished_thinking"
                elif parts.thinking is not None:
                    content = format_assistant(assistant_format, parts.thinking, parts.answer)
            chat.append({"role": role, "content": content})
        rows.append(chat)
        if not drop and not any(t["role"] == "assistant" for t in chat):
            drop = "no_assistant_turn"
        drops.append(drop)
    return {"messages": rows, "_drop": drops}


def public_to_messages(
    ds: Dataset, system_prompt: str | None, assistant_format: str, source: str = "the public data"
) -> tuple[Dataset, Counter]:
    """Public reasoning rows as ``messages`` in the same output format as the REER rows, and the drops per reason.

    Chats (``messages`` with role/content, or ``conversations`` with from/value as OpenThoughts has them, as lists or
    JSON strings of them) keep their user and assistant turns; their system turn is replaced by ``system_prompt``; an
    assistant turn with thinking markers (``<think>``, or OpenThoughts' ``<|begin_of_thought|>`` /
    ``<|begin_of_solution|>``) is rewritten to ``assistant_format``; one without is kept as it is; one whose thinking
    never closes drops its row. Rows of a REER shape go through :func:`~reer_hf.sft.trajectories.to_trajectories`.
    """
    shapes = {**PUBLIC_CHAT_SHAPES, **{k: v for k, v in REER_SHAPES.items() if k not in PUBLIC_CHAT_SHAPES}}
    shape = detect_shape(ds.column_names, shapes, what=f"public reasoning data ({source})")
    if shape in PUBLIC_CHAT_SHAPES:
        converted = ds.map(
            _chat_batch,
            batched=True,
            fn_kwargs={"column": shape, "system_prompt": system_prompt, "assistant_format": assistant_format},
            remove_columns=ds.column_names,
            desc="public messages",
        )
        drops = Counter(r for r in converted["_drop"] if r)
        converted = converted.filter(lambda r: not r, input_columns="_drop").remove_columns("_drop")
        return converted.cast(messages_features()), drops
    trajectories, drops = to_trajectories(ds, shape, keep_status=None, source=source)
    return trajectories_to_messages(trajectories, system_prompt, assistant_format), drops


def public_wanted(n_reer: int, count: int | None = None, ratio: float | None = None) -> int | None:
    """How many public rows the mixture asks for: ``count``, or as many as make ``ratio`` of the mixture with
    ``n_reer`` REER rows; ``None`` for all of them."""
    if count is not None:
        return count
    if ratio is not None:
        return round(ratio / (1.0 - ratio) * n_reer)
    return None


def sample_public(
    raw: Dataset,
    wanted: int | None,
    seed: int,
    system_prompt: str | None,
    assistant_format: str,
    source: str = "the public data",
) -> tuple[Dataset, dict]:
    """``wanted`` public rows (at least 1) as ``messages`` (all of them for ``None``), and what it took.

    The rows are taken in a seeded order of ``raw`` (numpy's ``default_rng(seed).permutation``) and only those are
    converted: the first ``wanted`` of them, then more of the same order while conversion drops some, until
    ``wanted`` rows are kept or the data runs out. The result is the first ``wanted`` rows of that order that survive
    conversion, so it depends on the seed only, not on how the top-ups fell. The info holds ``rows`` (in ``raw``),
    ``wanted``, ``converted`` (rows the converter saw), ``dropped`` (per reason) and ``kept``.
    """
    import numpy as np
    from datasets import concatenate_datasets

    if wanted is not None and wanted < 1:
        raise ValueError(f"wanted must be None (all rows) or at least 1, got {wanted}")
    n = len(raw)
    if wanted is None or wanted >= n:
        public, drops = public_to_messages(raw, system_prompt, assistant_format, source)
        if wanted is not None and len(public) < wanted:
            logger.warning("Asked for %d public rows; the public data has %d usable, all taken", wanted, len(public))
        info = {"rows": n, "wanted": wanted, "converted": n, "dropped": dict(drops), "kept": len(public)}
        return public, info
    order = np.random.default_rng(seed).permutation(n)
    parts: list[Dataset] = []
    drops: Counter = Counter()
    seen = kept = 0
    while kept < wanted and seen < n:
        need = wanted - kept
        # the first chunk is what was asked; a top-up allows for the drop rate seen so far
        take = need if not seen else math.ceil(need * seen / max(kept, 1))
        chunk = raw.select(order[seen : min(n, seen + take)])
        converted, chunk_drops = public_to_messages(chunk, system_prompt, assistant_format, source)
        seen += len(chunk)
        kept += len(converted)
        drops.update(chunk_drops)
        parts.append(converted)
    public = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    if len(public) > wanted:
        public = public.select(range(wanted))
    if len(public) < wanted:
        logger.warning("Asked for %d public rows; the public data has %d usable, all taken", wanted, len(public))
    info = {"rows": n, "wanted": wanted, "converted": seen, "dropped": dict(drops), "kept": len(public)}
    return public, info


def mix_datasets(reer: Dataset | None, public: Dataset, wanted: int | None = None) -> tuple[Dataset, dict]:
    """The REER rows followed by the public ones (both cast to one schema), and the mixture's counts; ``wanted`` is
    what was asked of the public side (``None``: all of it)."""
    from datasets import concatenate_datasets

    n_reer = len(reer) if reer is not None else 0
    parts = ([reer.cast(messages_features())] if reer is not None else []) + [public.cast(messages_features())]
    mixed = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    share = len(public) / len(mixed) if len(mixed) else 0.0
    info = {
        "reer": n_reer,
        "public": len(public),
        "public_wanted": len(public) if wanted is None else wanted,
        "public_share": round(share, 4),
    }
    return mixed, info
