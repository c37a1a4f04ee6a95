"""The public reasoning data of the paper's mixture (OpenThoughts) as ``messages``, and the seeded mix with the REER
rows.

TRL's ``DatasetMixtureConfig`` / ``get_dataset`` concatenates the sources' raw columns and takes the first rows of
each, so it fits neither sources of different shapes (DeepWriting-20K's prompt/solution, OpenThoughts'
conversations) nor a seeded sample; here both sides are converted to ``messages`` first, then concatenated with
``datasets.concatenate_datasets``.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

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

__all__ = ["PUBLIC_CHAT_SHAPES", "mix_datasets", "public_to_messages"]

logger = logging.getLogger(__name__)

#: Known shapes of the public reasoning data: chats, or any of the REER shapes.
PUBLIC_CHAT_SHAPES: dict[str, tuple[str, ...]] = {"messages": ("messages",), "conversations": ("conversations",)}

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _chat_batch(batch: dict, column: str, system_prompt: str | None, assistant_format: str) -> dict:
    """Chats in our roles and output format, plus ``_drop``: ``no_assistant_turn``, or ``unfinished_thinking`` for an
    assistant turn whose thinking never closes (training on it would teach the model never to answer)."""
    rows, drops = [], []
    for turns in batch[column]:
        chat = [{"role": "system", "content": system_prompt}] if system_prompt else []
        drop = ""
        for turn in turns or []:
            role = _ROLES.get(str(turn.get("role", turn.get("from", ""))).lower())
            content = turn.get("content", turn.get("value")) or ""
            if role is None or role == "system":
                continue  # the source's own system turn (OpenThoughts': its marker format) gives way to ours
            if role == "assistant":
                parts = split_thinking(content)
                if not parts.finished:
                    drop = "unfinished_thinking"
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

    Chats (``messages`` with role/content, or ``conversations`` with from/value as OpenThoughts has them) keep their
    user and assistant turns; their system turn is replaced by ``system_prompt``; an assistant turn with thinking
    markers (``<think>``, or OpenThoughts' ``<|begin_of_thought|>`` / ``<|begin_of_solution|>``) is rewritten to
    ``assistant_format``; one without is kept as it is; one whose thinking never closes drops its row. Rows of a REER
    shape go through :func:`~reer_hf.sft.trajectories.to_trajectories`.
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


def mix_datasets(
    reer: Dataset | None, public: Dataset, count: int | None = None, ratio: float | None = None, seed: int = 42
) -> tuple[Dataset, dict]:
    """REER rows followed by a seeded sample of the public rows: ``count`` of them, or as many as make ``ratio`` of
    the mixture, or all of them. Asking for more public rows than there are takes them all (and says so)."""
    from datasets import concatenate_datasets

    n_reer = len(reer) if reer is not None else 0
    wanted = len(public)
    if count is not None:
        wanted = count
    elif ratio is not None:
        wanted = round(ratio / (1.0 - ratio) * n_reer)
    n_public = min(wanted, len(public))
    if n_public < wanted:
        logger.warning("Asked for %d public rows; the public data has %d, all taken", wanted, len(public))
    sample = public if n_public == len(public) else public.shuffle(seed=seed).select(range(n_public))
    parts = ([reer.cast(messages_features())] if reer is not None else []) + [sample.cast(messages_features())]
    mixed = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    share = n_public / len(mixed) if len(mixed) else 0.0
    return mixed, {"reer": n_reer, "public": n_public, "public_wanted": wanted, "public_share": round(share, 4)}
