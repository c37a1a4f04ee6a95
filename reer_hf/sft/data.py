"""SFT data for DeepWriter: REER trajectories to ``messages``, the paper's ablations as transforms, the public mix.

The pipeline (:func:`build_sft_dataset`) records the row count before and after each step in a
:class:`SFTDataReport`, which ``--dry_run`` prints with a length histogram and one sample:

1. **Load** the REER data (Hub id, local jsonl/json/parquet file or ``save_to_disk`` folder) and recognise its shape
   from its column names (:data:`REER_SHAPES`); any other shape fails with the columns found and the ones expected.
2. **Trajectories**: one ``query`` / ``thinking`` / ``answer`` row per item. The synthesis output keeps
   ``status == "ok"`` rows and takes ``z_star`` (``z0`` for the no-search ablation); a ``solution`` holding
   ``<think>...</think>`` then the answer is split there (an ``<answer>`` wrapper is removed).
3. **Ablations** on the REER rows: exclude categories, remove reflection phrases (:func:`remove_reflections`),
   down-sample long or short trajectories (:func:`downsample_by_length`, seeded).
4. **Messages**: system prompt, user turn, and the assistant turn in ``reer_assistant_format`` (by default the paper's
   ``<think>...</think><answer>...</answer>``).
5. **Mix** with public reasoning data (:func:`public_to_messages`, :func:`mix_datasets`) by count or ratio, seeded.

TRL's ``DatasetMixtureConfig`` / ``get_dataset`` concatenates the sources' raw columns and takes the first rows of
each, so it fits neither sources of different shapes (DeepWriting-20K's prompt/solution, OpenThoughts'
conversations) nor a seeded sample; the mix here converts both sides to ``messages`` first, then concatenates them
with ``datasets.concatenate_datasets``.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reer_hf.core.formats import format_assistant, to_messages
from reer_hf.core.reflection import remove_reflections
from reer_hf.core.text import split_thinking

if TYPE_CHECKING:
    from datasets import Dataset

    from reer_hf.sft.config import SFTScriptArguments

logger = logging.getLogger(__name__)

#: Known shapes of REER data, tried in order: name -> columns that must all be present.
REER_SHAPES: dict[str, tuple[str, ...]] = {
    "synthesis": ("query", "answer", "z_star"),  # recipes/synthesize.py output (also has z0, status, messages)
    "prompt_solution": ("prompt", "solution"),  # m-a-p/DeepWriting-20K as third-party loaders describe it
    "question_solution": ("question", "solution"),
    "messages": ("messages",),  # a chat whose last assistant turn holds <think>...</think> then the answer
}
#: Known shapes of the public reasoning data: chats, or any of the REER shapes.
PUBLIC_CHAT_SHAPES: dict[str, tuple[str, ...]] = {"messages": ("messages",), "conversations": ("conversations",)}

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _messages_features():
    from datasets import Features, List, Value

    return Features({"messages": List({"role": Value("string"), "content": Value("string")})})


# --------------------------------------------------------------------------------------------------------------------
# Loading and shapes


def load_table(source: str, config: str | None = None, split: str = "train") -> Dataset:
    """A ``datasets.Dataset`` from a local jsonl/json/parquet file, a ``save_to_disk`` folder, or a Hub id."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    path = Path(source)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        ds = load_from_disk(str(path))
        return ds[split] if isinstance(ds, DatasetDict) else ds
    if path.suffix in (".jsonl", ".json", ".parquet"):
        if not path.is_file():
            hint = " (the output of recipes/synthesize.py: run it first)" if path.name == "reer.parquet" else ""
            raise FileNotFoundError(f"{source} does not exist{hint}")
        builder = "parquet" if path.suffix == ".parquet" else "json"
        return load_dataset(builder, data_files=str(path), split="train")
    return load_dataset(source, config, split=split)


def detect_shape(columns: list[str], shapes: dict[str, tuple[str, ...]] = REER_SHAPES, what: str = "REER data") -> str:
    """The first shape of ``shapes`` whose columns are all in ``columns``; otherwise a ``ValueError`` that names the
    columns found and the ones expected."""
    for name, needed in shapes.items():
        if set(needed) <= set(columns):
            return name
    expected = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in shapes.items())
    raise ValueError(
        f"Unrecognised {what}: its columns are {sorted(columns)}; expected one of these shapes: {expected}"
    )


def _query_text(value: Any) -> str | None:
    """A query cell as text: a string, or the last user turn of a chat list."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, list):
        users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") in ("user", None)]
        return users[-1] if users else None
    return None


def _trajectory_batch(batch: dict, shape: str, thinking_column: str, keep_status: str | None) -> dict:
    """Rows of any REER shape as ``query`` / ``thinking`` / ``answer`` plus ``_drop`` (the reason, or empty)."""
    n = len(next(iter(batch.values())))
    out: dict[str, list] = {"query": [], "thinking": [], "answer": [], "_drop": []}
    for i in range(n):
        query = thinking = answer = None
        drop = ""
        if shape == "synthesis":
            query, answer, thinking = batch["query"][i], batch["answer"][i], batch[thinking_column][i]
            status = batch["status"][i] if "status" in batch else None
            if keep_status and status is not None and status != keep_status:
                drop = f"status={status}"
        else:
            if shape == "messages":
                turns = batch["messages"][i] or []
                query = _query_text(turns)
                replies = [m.get("content") or "" for m in turns if m.get("role") == "assistant"]
                solution = replies[-1] if replies else ""
            else:
                query = _query_text(batch["prompt" if shape == "prompt_solution" else "question"][i])
                solution = batch["solution"][i] or ""
            parts = split_thinking(solution)
            if parts.thinking is None:
                drop = "no_thinking"
            elif not parts.finished:
                drop = "unfinished_thinking"
            else:
                thinking, answer = parts.thinking, parts.answer
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
    data), and the count of the rows dropped per reason (``status=...``, ``no_thinking``, ``empty_*``)."""
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


def _remove_reflections_batch(batch: dict) -> dict:
    thinking = [remove_reflections(t) for t in batch["thinking"]]
    changed = [int(new != old) for new, old in zip(thinking, batch["thinking"], strict=True)]
    return {"thinking": thinking, "_changed": changed}


# --------------------------------------------------------------------------------------------------------------------
# Ablation: fewer long / fewer short trajectories


def token_lengths(texts: list[str], tokenizer, batch_size: int = 512) -> list[int]:
    """Token counts of ``texts`` with ``tokenizer`` (no special tokens)."""
    lengths: list[int] = []
    for i in range(0, len(texts), batch_size):
        ids = tokenizer(texts[i : i + batch_size], add_special_tokens=False)["input_ids"]
        lengths.extend(len(x) for x in ids)
    return lengths


def downsample_by_length(
    lengths: list[int], mode: str, cutoff: int | None = None, keep_fraction: float = 0.5, seed: int = 42
) -> tuple[list[int], dict]:
    """Indices (in order) kept by the length ablation, and what it did.

    ``fewer_long`` keeps ``round(keep_fraction * n)`` of the ``n`` rows longer than ``cutoff`` (a seeded sample) and
    every other row; ``fewer_short`` does the same to the rows at most ``cutoff`` long. ``cutoff=None`` is the median
    length, so the two sides are about equal.
    """
    if mode not in ("fewer_long", "fewer_short"):
        raise ValueError(f"mode must be fewer_long or fewer_short, got {mode!r}")
    if not lengths:
        return [], {"cutoff": cutoff, "sampled_side": 0, "kept_of_side": 0}
    cutoff = int(statistics.median(lengths)) if cutoff is None else cutoff
    side = [i for i, n in enumerate(lengths) if (n > cutoff) == (mode == "fewer_long")]
    kept_side = set(random.Random(seed).sample(side, round(keep_fraction * len(side))))
    side_set = set(side)
    kept = [i for i in range(len(lengths)) if i not in side_set or i in kept_side]
    return kept, {"cutoff": cutoff, "sampled_side": len(side), "kept_of_side": len(kept_side)}


# --------------------------------------------------------------------------------------------------------------------
# Messages and the public mix


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
        features=_messages_features(),
        desc="messages",
    )


def _chat_batch(batch: dict, column: str, system_prompt: str | None, assistant_format: str) -> dict:
    rows, drops = [], []
    for turns in batch[column]:
        chat = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for turn in turns or []:
            role = _ROLES.get(str(turn.get("role", turn.get("from", ""))).lower())
            content = turn.get("content", turn.get("value")) or ""
            if role is None or role == "system":
                continue  # the source's own system turn (OpenThoughts': its marker format) gives way to ours
            parts = split_thinking(content) if role == "assistant" else None
            if parts is not None and parts.thinking is not None and parts.finished:
                content = format_assistant(assistant_format, parts.thinking, parts.answer)
            chat.append({"role": role, "content": content})
        rows.append(chat)
        drops.append("" if any(t["role"] == "assistant" for t in chat) else "no_assistant_turn")
    return {"messages": rows, "_drop": drops}


def public_to_messages(
    ds: Dataset, system_prompt: str | None, assistant_format: str, source: str = "the public data"
) -> tuple[Dataset, Counter]:
    """Public reasoning rows as ``messages`` in the same output format as the REER rows, and the drops per reason.

    Chats (``messages`` with role/content, or ``conversations`` with from/value as OpenThoughts has them) keep their
    user and assistant turns; their system turn is replaced by ``system_prompt``; an assistant turn with thinking
    markers (``<think>``, or OpenThoughts' ``<|begin_of_thought|>`` / ``<|begin_of_solution|>``) is rewritten to
    ``assistant_format``; one without is kept as it is. Rows of a REER shape go through :func:`to_trajectories`.
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
        return converted.cast(_messages_features()), drops
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
    parts = ([reer.cast(_messages_features())] if reer is not None else []) + [sample.cast(_messages_features())]
    mixed = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    share = n_public / len(mixed) if len(mixed) else 0.0
    return mixed, {"reer": n_reer, "public": n_public, "public_wanted": wanted, "public_share": round(share, 4)}


# --------------------------------------------------------------------------------------------------------------------
# The pipeline and its report


@dataclass
class SFTDataReport:
    """What the data pipeline did: the row counts of each step, and (after :meth:`describe`) the lengths and a
    sample."""

    steps: list[dict] = field(default_factory=list)
    shape: str | None = None
    categories: dict[str, int] | None = None
    mix: dict | None = None
    thinking_tokens: list[int] = field(default_factory=list)
    conversation_tokens: list[int] = field(default_factory=list)
    sample: list[dict] | None = None

    def add(self, step: str, before: int, after: int, detail: str = "") -> None:
        self.steps.append({"step": step, "before": before, "after": after, "detail": detail})
        logger.info("%s: %d -> %d rows %s", step, before, after, detail)

    def describe(self, ds: Dataset, tokenizer) -> None:
        """Token lengths of every conversation as the chat template renders it, and the first row."""
        self.sample = ds[0]["messages"] if len(ds) else None
        self.conversation_tokens = []
        for i in range(0, len(ds), 256):
            texts = tokenizer.apply_chat_template(ds[i : i + 256]["messages"], tokenize=False)
            self.conversation_tokens.extend(token_lengths(texts, tokenizer))

    def to_dict(self) -> dict:
        return {
            "shape": self.shape,
            "steps": self.steps,
            "categories": self.categories,
            "mix": self.mix,
            "thinking_tokens": _stats(self.thinking_tokens),
            "conversation_tokens": _stats(self.conversation_tokens),
        }

    def format(self, max_length: int | None = None, sample_chars: int = 1200) -> str:
        lines = [f"REER data shape: {self.shape or 'none (public data only)'}", "", "rows per step:"]
        width = max((len(s["step"]) for s in self.steps), default=4)
        for s in self.steps:
            lines.append(f"  {s['step']:<{width}}  {s['before']:>7} -> {s['after']:>7}  {s['detail']}".rstrip())
        if self.mix:
            lines.append(f"  mixture: {self.mix}")
        if self.categories:
            lines.append(f"categories of the REER rows (before any exclusion): {self.categories}")
        lines += ["", length_histogram(self.thinking_tokens, self.conversation_tokens)]
        for name, values in (
            ("thinking (REER rows)", self.thinking_tokens),
            ("conversation", self.conversation_tokens),
        ):
            if values:
                st = _stats(values)
                lines.append(
                    f"{name} tokens: min {st['min']}, median {st['median']}, p90 {st['p90']}, max {st['max']}"
                )
        if max_length and self.conversation_tokens:
            over = sum(n > max_length for n in self.conversation_tokens)
            lines.append(f"conversations over max_length={max_length}: {over} (SFTTrainer truncates them)")
        if self.sample:
            lines += ["", "sample (row 0):"]
            for turn in self.sample:
                content = turn["content"]
                if len(content) > sample_chars:
                    cut = sample_chars // 3
                    content = f"{content[: 2 * cut]}\n[... {len(content) - 3 * cut} characters ...]\n{content[-cut:]}"
                lines.append(f"--- {turn['role']} ---\n{content}")
        return "\n".join(lines)


def _stats(values: list[int]) -> dict | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "min": ordered[0],
        "median": int(statistics.median(ordered)),
        "p90": ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }


HISTOGRAM_EDGES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def length_histogram(thinking: list[int], conversations: list[int], edges=HISTOGRAM_EDGES, bar: int = 30) -> str:
    """A text table of token lengths per bucket: the REER thinking and the whole conversations, with a bar for the
    conversations."""
    bounds = [0, *edges, math.inf]
    labels = [f"{lo}-{hi - 1}" if hi != math.inf else f">={lo}" for lo, hi in zip(bounds, bounds[1:], strict=False)]
    count_t = [sum(lo <= n < hi for n in thinking) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    count_c = [sum(lo <= n < hi for n in conversations) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    top = max(count_c, default=0) or 1
    rows = [f"{'tokens':>12} | {'thinking':>8} | {'conversation':>12} |", f"{'-' * 12}-+-{'-' * 8}-+-{'-' * 12}-+"]
    for label, t, c in zip(labels, count_t, count_c, strict=True):
        rows.append(f"{label:>12} | {t:>8} | {c:>12} | {'#' * round(bar * c / top)}")
    return "\n".join(rows)


def build_sft_dataset(args: SFTScriptArguments, tokenizer=None) -> tuple[Dataset, SFTDataReport]:
    """The training ``messages`` dataset for ``args`` and the report of every step (see the module docstring).

    ``tokenizer`` (the model's) measures the thinking lengths; it is needed by the length ablation only.
    """
    report = SFTDataReport()
    reer = None
    if not args.ablation_no_synthetic:
        raw = load_table(args.dataset_name, args.dataset_config, args.dataset_train_split)
        report.add("load REER data", len(raw), len(raw), args.dataset_name)
        if args.reer_max_rows is not None and args.reer_max_rows < len(raw):
            before = len(raw)
            raw = raw.select(range(args.reer_max_rows))
            report.add("reer_max_rows", before, len(raw))
        report.shape = detect_shape(raw.column_names)
        if args.ablation_exclude_categories and args.reer_category_column not in raw.column_names:
            raise ValueError(
                f"ablation_exclude_categories needs a category column: {args.reer_category_column!r} is not among "
                f"{sorted(raw.column_names)} (set reer_category_column)"
            )
        before = len(raw)
        reer, drops = to_trajectories(
            raw,
            report.shape,
            no_search=args.ablation_no_search,
            keep_status=args.reer_keep_status,
            category_column=args.reer_category_column,
            source=args.dataset_name,
        )
        if "category" in reer.column_names:
            report.categories = dict(Counter(str(c) for c in reer["category"]).most_common(30))
        which = "z0 (ablation_no_search)" if args.ablation_no_search else "refined thinking"
        report.add("trajectories", before, len(reer), f"{which}; dropped {dict(drops)}" if drops else which)
        if args.ablation_exclude_categories:
            excluded = {c.casefold() for c in args.ablation_exclude_categories}
            before = len(reer)
            reer = reer.filter(lambda c: str(c).casefold() not in excluded, input_columns="category")
            report.add("ablation_exclude_categories", before, len(reer), ", ".join(args.ablation_exclude_categories))
        if args.ablation_no_reflection:
            reer = reer.map(_remove_reflections_batch, batched=True, desc="remove reflection phrases")
            changed = sum(reer["_changed"])
            reer = reer.remove_columns("_changed")
            report.add("ablation_no_reflection", len(reer), len(reer), f"{changed} thinkings changed")
        if tokenizer is not None:
            report.thinking_tokens = token_lengths(reer["thinking"], tokenizer)
        if args.ablation_length != "none":
            if tokenizer is None:
                raise ValueError("ablation_length measures thinking tokens: pass the model's tokenizer")
            kept, info = downsample_by_length(
                report.thinking_tokens,
                args.ablation_length,
                args.ablation_length_cutoff,
                args.ablation_length_keep_fraction,
                args.reer_seed,
            )
            before = len(reer)
            reer = reer.select(kept)
            report.thinking_tokens = [report.thinking_tokens[i] for i in kept]
            side = "longer than" if args.ablation_length == "fewer_long" else "at most"
            detail = f"{info['kept_of_side']} of the {info['sampled_side']} rows {side} {info['cutoff']} tokens kept"
            report.add(f"ablation_length={args.ablation_length}", before, len(reer), detail)
        reer = trajectories_to_messages(
            reer, args.reer_system_prompt, args.reer_assistant_format, args.reer_user_template
        )
    if not args.mix_dataset_name:
        if reer is None or len(reer) == 0:
            raise ValueError("No training rows left: check the data and the ablation options (try --dry_run)")
        return reer, report
    raw = load_table(args.mix_dataset_name, args.mix_dataset_config, args.mix_dataset_split)
    public, drops = public_to_messages(raw, args.reer_system_prompt, args.reer_assistant_format, args.mix_dataset_name)
    report.add("load public data", len(raw), len(public), f"{args.mix_dataset_name}; dropped {dict(drops)}")
    before = (len(reer) if reer is not None else 0) + len(public)
    mixed, report.mix = mix_datasets(reer, public, args.mix_count, args.mix_ratio, args.reer_seed)
    report.add("mix", before, len(mixed), f"{report.mix['reer']} REER + {report.mix['public']} public")
    if len(mixed) == 0:
        raise ValueError("No training rows left: check the data and the ablation options (try --dry_run)")
    return mixed, report
