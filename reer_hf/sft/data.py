"""SFT data for DeepWriter: REER trajectories to ``messages``, the paper's ablations as transforms, the public mix.

The pipeline (:func:`build_sft_dataset`) records the row count before and after each step in a
:class:`~reer_hf.sft.report.SFTDataReport`, which ``--dry_run`` prints with a length histogram and one sample:

1. **Load** the REER data (Hub id, local jsonl/json/parquet file or ``save_to_disk`` folder) and recognise its shape
   from its column names (:data:`~reer_hf.sft.trajectories.REER_SHAPES`); any other shape fails with the columns
   found and the ones expected.
2. **Trajectories**: one ``query`` / ``thinking`` / ``answer`` row per item. The synthesis output keeps
   ``status == "ok"`` rows and takes ``z_star`` (``z0`` for the no-search ablation); a ``solution`` holding
   ``<think>...</think>`` then the answer is split there (an ``<answer>`` wrapper is removed); a solution without
   markers, or whose thinking never closes, is dropped.
3. **Ablations** on the REER rows: exclude categories, remove reflection phrases
   (:func:`~reer_hf.core.reflection.remove_reflections`), down-sample long or short trajectories
   (:func:`downsample_by_length`, seeded).
4. **Messages**: system prompt, user turn, and the assistant turn in ``reer_assistant_format`` (by default the paper's
   ``<think>...</think><answer>...</answer>``).
5. **Mix** with public reasoning data (:mod:`~reer_hf.sft.mixture`) by count or ratio, seeded.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import TYPE_CHECKING, Literal

from reer_hf.core.reflection import remove_reflections
from reer_hf.sft.mixture import mix_datasets, public_to_messages
from reer_hf.sft.report import SFTDataReport, token_lengths
from reer_hf.sft.trajectories import detect_shape, load_table, to_trajectories, trajectories_to_messages

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from reer_hf.sft.config import SFTScriptArguments

__all__ = ["build_sft_dataset", "downsample_by_length"]


def _remove_reflections_batch(batch: dict) -> dict:
    """The no-reflection ablation on the thinking only (the answer is the reference text), with a changed flag for the
    report."""
    thinking = [remove_reflections(t) for t in batch["thinking"]]
    changed = [int(new != old) for new, old in zip(thinking, batch["thinking"], strict=True)]
    return {"thinking": thinking, "_changed": changed}


def downsample_by_length(
    lengths: list[int],
    mode: Literal["fewer_long", "fewer_short"],
    cutoff: int | None = None,
    keep_fraction: float = 0.5,
    seed: int = 42,
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


def _reer_messages(
    args: SFTScriptArguments, tokenizer: PreTrainedTokenizerBase | None, report: SFTDataReport
) -> Dataset:
    """Steps 1-4 of the pipeline on the REER data: load, trajectories, ablations, messages."""
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
    return trajectories_to_messages(reer, args.reer_system_prompt, args.reer_assistant_format, args.reer_user_template)


def build_sft_dataset(
    args: SFTScriptArguments, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[Dataset, SFTDataReport]:
    """The training ``messages`` dataset for ``args`` and the report of every step (see the module docstring).

    ``tokenizer`` (the model's) measures the thinking lengths; it is needed by the length ablation only.
    """
    report = SFTDataReport()
    reer = None if args.ablation_no_synthetic else _reer_messages(args, tokenizer, report)
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
