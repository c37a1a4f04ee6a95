"""SFT data for DeepWriter: REER trajectories to ``messages``, the paper's ablations as transforms, the public mix.

The pipeline (:func:`build_sft_dataset`) records the row count before and after each step in a
:class:`~reer_hf.sft.report.SFTDataReport`, which ``--dry_run`` prints with a length histogram and one sample:

1. **Load** the REER data (Hub id or local folder with optional ``data_files`` / ``revision``, local or ``hf://``
   jsonl/json/parquet file, ``save_to_disk`` folder) and recognise its shape from its column names
   (:data:`~reer_hf.sft.trajectories.REER_SHAPES`); any other shape fails with the columns found and the ones
   expected.
2. **Trajectories**: one ``query`` / ``thinking`` / ``answer`` row per item. The synthesis output keeps
   ``status == "ok"`` rows and takes ``z_star`` (``z0`` for the no-search ablation); a ``solution`` holding
   ``<think>...</think>`` then the answer is split there (an ``<answer>`` wrapper is removed); a solution without
   markers, or whose thinking never closes, is dropped. A chat stored as a JSON string is decoded.
3. **Ablations** on the REER rows: exclude categories, remove reflection phrases
   (:func:`~reer_hf.core.reflection.remove_reflections`), down-sample long or short trajectories
   (:func:`downsample_by_length`, seeded, on thinking lengths measured by a cached ``datasets`` map).
4. **Messages**: system prompt, user turn, and the assistant turn in ``reer_assistant_format`` (by default the paper's
   ``<think>...</think><answer>...</answer>``).
5. **Mix** with a seeded sample of the public reasoning data (:mod:`~reer_hf.sft.mixture`), by count or ratio.
6. **End of turn**: every conversation tokenized as ``SFTTrainer`` will (:mod:`~reer_hf.sft.end_of_turn`); those
   ``max_length`` would cut before their end-of-turn token are dropped (or kept and counted).

A step that leaves no rows fails with every step's counts and drop reasons. With a cache folder, the result and its
report are saved there once (:func:`build_sft_dataset`), so the other ranks of a launch
(:func:`build_sft_dataset_on_ranks`) and a rerun load them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reer_hf.core.cache import cache_root
from reer_hf.core.reflection import remove_reflections
from reer_hf.sft.end_of_turn import Truncation, end_of_turn_step
from reer_hf.sft.mixture import mix_datasets, public_wanted, sample_public
from reer_hf.sft.report import SFTDataReport
from reer_hf.sft.trajectories import detect_shape, load_table, to_trajectories, trajectories_to_messages

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from reer_hf.sft.config import SFTScriptArguments

__all__ = [
    "build_sft_dataset",
    "build_sft_dataset_on_ranks",
    "data_cache_dir",
    "data_cache_key",
    "downsample_by_length",
]

logger = logging.getLogger(__name__)

#: The options that decide the rows (the fields of ``SFTScriptArguments`` the pipeline reads): the cache key hashes
#: these alone. Every other field must be in :data:`SCRIPT_OPTIONS`; a test fails on a field in neither.
DATA_OPTIONS = frozenset(
    {
        "dataset_name",
        "dataset_config",
        "dataset_train_split",
        "dataset_data_files",
        "dataset_revision",
        "reer_max_rows",
        "reer_keep_status",
        "reer_system_prompt",
        "reer_user_template",
        "reer_assistant_format",
        "reer_over_max_length",
        "reer_category_column",
        "reer_seed",
        "ablation_no_synthetic",
        "ablation_no_search",
        "ablation_no_reflection",
        "ablation_length",
        "ablation_length_cutoff",
        "ablation_length_keep_fraction",
        "ablation_exclude_categories",
        "mix_dataset_name",
        "mix_dataset_config",
        "mix_dataset_split",
        "mix_dataset_data_files",
        "mix_dataset_revision",
        "mix_count",
        "mix_ratio",
    }
)
#: The fields of ``SFTScriptArguments`` that change how a run operates or what it writes, not the rows it trains on:
#: left out of the cache key.
SCRIPT_OPTIONS = frozenset(
    {
        "dry_run",
        "reer_recipe_path",
        "reer_data_cache",
        "reer_data_cache_dir",
        "reer_auto_resume",
        "reer_model_license",
        "reer_project_url",
    }
)
#: The package folders whose files decide the rows (the conversion code, the shared core it builds on, the prompts a
#: user template may name): any change there voids the cached data, so a module added later is covered too.
_CONVERSION_FOLDERS = ("sft", "core", "prompts")


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


def _thinking_tokens_batch(batch: dict, tokenizer: PreTrainedTokenizerBase) -> dict:
    ids = tokenizer(batch["thinking"], add_special_tokens=False)["input_ids"]
    return {"_thinking_tokens": [len(x) for x in ids]}


def _source_label(name: str | None, data_files: list[str] | None, revision: str | None) -> str:
    """A source as the report names it: its name, revision and chosen files."""
    label = f"{name}@{revision}" if revision else str(name)
    return f"{label} [{', '.join(data_files)}]" if data_files else label


def _require_rows(ds: Dataset, report: SFTDataReport, what: str) -> None:
    """Stop at the step that left no rows, with every step's counts, before an empty table reaches a cast."""
    if len(ds) == 0:
        raise report.no_rows_error(what)


def _reer_messages(
    args: SFTScriptArguments,
    raw: Dataset,
    tokenizer: PreTrainedTokenizerBase | None,
    measure_lengths: bool,
    report: SFTDataReport,
) -> Dataset:
    """Steps 1-4 of the pipeline on the loaded REER data: trajectories, ablations, messages."""
    source = _source_label(args.dataset_name, args.dataset_data_files, args.dataset_revision)
    report.add("load REER data", len(raw), len(raw), source)
    _require_rows(raw, report, "REER rows")
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
    _require_rows(reer, report, "REER rows")
    if args.ablation_exclude_categories:
        excluded = {c.casefold() for c in args.ablation_exclude_categories}
        before = len(reer)
        reer = reer.filter(lambda c: str(c).casefold() not in excluded, input_columns="category")
        report.add("ablation_exclude_categories", before, len(reer), ", ".join(args.ablation_exclude_categories))
        _require_rows(reer, report, "REER rows")
    if args.ablation_no_reflection:
        reer = reer.map(_remove_reflections_batch, batched=True, desc="remove reflection phrases")
        changed = sum(reer["_changed"])
        reer = reer.remove_columns("_changed")
        report.add("ablation_no_reflection", len(reer), len(reer), f"{changed} thinkings changed")
    if tokenizer is not None and (measure_lengths or args.ablation_length != "none"):
        # a datasets map, so its result is cached by fingerprint (a rerun reads it back instead of tokenising again)
        measured = reer.map(
            _thinking_tokens_batch, batched=True, fn_kwargs={"tokenizer": tokenizer}, desc="thinking tokens"
        )
        report.thinking_tokens = list(measured["_thinking_tokens"])
    if args.ablation_length != "none":
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
        _require_rows(reer, report, "REER rows")
    return trajectories_to_messages(reer, args.reer_system_prompt, args.reer_assistant_format, args.reer_user_template)


def _load_sources(args: SFTScriptArguments) -> tuple[Dataset | None, Dataset | None]:
    """The raw REER and public tables (``None`` for a side the options leave out)."""
    reer = None
    if not args.ablation_no_synthetic:
        reer = load_table(
            args.dataset_name,
            args.dataset_config,
            args.dataset_train_split,
            args.dataset_data_files,
            args.dataset_revision,
        )
    public = None
    if args.mix_dataset_name:
        public = load_table(
            args.mix_dataset_name,
            args.mix_dataset_config,
            args.mix_dataset_split,
            args.mix_dataset_data_files,
            args.mix_dataset_revision,
        )
    return reer, public


def _build(
    args: SFTScriptArguments,
    sources: tuple[Dataset | None, Dataset | None],
    tokenizer: PreTrainedTokenizerBase | None,
    measure_lengths: bool,
    truncation: Truncation | None,
) -> tuple[Dataset, SFTDataReport]:
    """Steps 1-5, then the end-of-turn step when the trainer's ``truncation`` is known."""
    report = SFTDataReport()
    rows = _mixed_rows(args, sources, tokenizer, measure_lengths, report)
    if truncation is not None:
        rows = end_of_turn_step(rows, tokenizer, truncation, args.reer_over_max_length, report)
        _require_rows(rows, report, "conversations")
    return rows, report


def _mixed_rows(
    args: SFTScriptArguments,
    sources: tuple[Dataset | None, Dataset | None],
    tokenizer: PreTrainedTokenizerBase | None,
    measure_lengths: bool,
    report: SFTDataReport,
) -> Dataset:
    reer_raw, public_raw = sources
    reer = None if reer_raw is None else _reer_messages(args, reer_raw, tokenizer, measure_lengths, report)
    if public_raw is None:
        return reer
    wanted = public_wanted(len(reer) if reer is not None else 0, args.mix_count, args.mix_ratio)
    source = _source_label(args.mix_dataset_name, args.mix_dataset_data_files, args.mix_dataset_revision)
    report.add("load public data", len(public_raw), len(public_raw), source)
    if wanted == 0:  # a mix_ratio too small for the REER rows at hand
        report.add("public rows", len(public_raw), 0, f"mix_ratio={args.mix_ratio} of {len(reer)} REER rows is none")
        report.mix = {"reer": len(reer), "public": 0, "public_wanted": 0, "public_share": 0.0}
        return reer
    public, info = sample_public(
        public_raw, wanted, args.reer_seed, args.reer_system_prompt, args.reer_assistant_format, args.mix_dataset_name
    )
    dropped = f"dropped {info['dropped']}" if info["dropped"] else "none dropped"
    if wanted is None:
        detail = f"all rows; {dropped}"
    else:
        detail = f"seeded sample of {wanted} (seed {args.reer_seed}): {info['converted']} rows converted, {dropped}"
    report.add("public rows", len(public_raw), len(public), detail)
    if len(public) == 0:
        raise report.no_rows_error("public rows")
    mixed, report.mix = mix_datasets(reer, public, wanted)
    report.add("mix", len(mixed), len(mixed), f"{report.mix['reer']} REER + {report.mix['public']} public")
    return mixed


def data_cache_dir(args: SFTScriptArguments) -> Path | None:
    """Where :func:`build_sft_dataset` keeps built data for ``args``: ``None`` when ``reer_data_cache`` is off."""
    if not args.reer_data_cache:
        return None
    return Path(args.reer_data_cache_dir) if args.reer_data_cache_dir else cache_root() / "sft-data"


def _code_digest() -> str:
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for folder in _CONVERSION_FOLDERS:
        for path in sorted((package / folder).glob("*.*")):
            if path.suffix in (".py", ".md", ".jinja"):
                digest.update(f"{folder}/{path.name}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def data_cache_key(
    args: SFTScriptArguments,
    tokenizer: PreTrainedTokenizerBase | None,
    sources: tuple[Dataset | None, Dataset | None],
    truncation: Truncation | None = None,
) -> tuple[str, dict]:
    """The cache key of the data ``args`` builds, and what it hashes: the options that decide the rows
    (:data:`DATA_OPTIONS`), the fingerprints ``datasets`` gives the loaded sources (they change with a local file's
    content and a Hub revision), the tokenizer (it measures the thinking lengths and the conversations), the trainer's
    ``truncation`` (it decides which conversations keep their end of turn) and the conversion code."""
    from datasets.fingerprint import Hasher

    options = {name: getattr(args, name) for name in sorted(DATA_OPTIONS)}
    tok = None
    if tokenizer is not None:
        tok = {
            "name": tokenizer.name_or_path,
            "chat_template": tokenizer.chat_template,
            "eos_token": tokenizer.eos_token,
            "hash": Hasher.hash(tokenizer),
        }
    payload = {
        "options": options,
        "sources": [None if ds is None else ds._fingerprint for ds in sources],
        "tokenizer": tok,
        "truncation": None if truncation is None else truncation.to_dict(),
        "code": _code_digest(),
    }
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return key, payload


def _load_entry(entry: Path) -> tuple[Dataset, SFTDataReport] | None:
    """The dataset and report saved at ``entry``; ``None`` when there is none, or when it is damaged (files removed
    by hand): the data is then built again, without a cache until that folder is deleted."""
    from datasets import load_from_disk

    if not (entry / "report.json").is_file():
        return None
    try:
        report = SFTDataReport.from_state(json.loads((entry / "report.json").read_text(encoding="utf-8")))
        return load_from_disk(str(entry / "dataset")), report
    except (OSError, ValueError, TypeError) as err:
        logger.warning("Ignoring the damaged SFT data cache %s (%s): delete it to cache again", entry, err)
        return None


def _save_entry(entry: Path, dataset: Dataset, report: SFTDataReport, payload: dict) -> bool:
    """Publish ``dataset`` and its report at ``entry``: written into a temporary folder beside it, then renamed in
    whole, so a reader sees all or nothing. Another process that published first wins; a failure to write is logged
    and leaves no entry (the run goes on with the data it built)."""
    tmp = entry.with_name(f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        dataset.save_to_disk(str(tmp / "dataset"))
        (tmp / "key.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
        (tmp / "report.json").write_text(json.dumps(report.state()), encoding="utf-8")  # last: marks it complete
        os.rename(tmp, entry)
        return True
    except OSError as err:
        if _load_entry(entry) is not None:  # another process published the same data first
            return True
        logger.warning("Could not save the SFT data to %s (%s): each process builds its own", entry, err)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_sft_dataset(
    args: SFTScriptArguments,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    measure_lengths: bool = False,
    cache_dir: str | os.PathLike | None = None,
    truncation: Truncation | None = None,
) -> tuple[Dataset, SFTDataReport]:
    """The training ``messages`` dataset for ``args`` and the report of every step (see the module docstring).

    ``tokenizer`` (the model's, with the recipe's chat template and end-of-turn token) measures the thinking lengths,
    for the length ablation (which needs it) and, with ``measure_lengths``, for the report; ``truncation`` (the
    trainer's) adds the end-of-turn step. With ``cache_dir``, the result is looked up there under
    :func:`data_cache_key`, else built (its lengths measured, so the entry serves any later reader) and saved there,
    and the dataset returned is the saved one: every process of a launch gets the same table.
    """
    dataset, report, _ = _build_or_load(args, tokenizer, measure_lengths, cache_dir, truncation)
    return dataset, report


def _build_or_load(
    args: SFTScriptArguments,
    tokenizer: PreTrainedTokenizerBase | None,
    measure_lengths: bool,
    cache_dir: str | os.PathLike | None,
    truncation: Truncation | None,
) -> tuple[Dataset, SFTDataReport, Path | None]:
    """:func:`build_sft_dataset`, with the cache entry it loaded or saved (``None`` without one)."""
    if args.ablation_length != "none" and tokenizer is None:
        raise ValueError("ablation_length measures thinking tokens: pass the model's tokenizer")
    if truncation is not None and tokenizer is None:
        raise ValueError("the end-of-turn step tokenizes the conversations: pass the model's tokenizer")
    sources = _load_sources(args)
    if cache_dir is None:
        return *_build(args, sources, tokenizer, measure_lengths, truncation), None
    key, payload = data_cache_key(args, tokenizer, sources, truncation)
    entry = Path(cache_dir) / key
    cached = _load_entry(entry)
    if cached is not None:
        logger.info("SFT data loaded from %s", entry)
        return *cached, entry
    dataset, report = _build(args, sources, tokenizer, True, truncation)
    if not _save_entry(entry, dataset, report, payload):
        return dataset, report, None
    logger.info("SFT data saved to %s", entry)
    saved = _load_entry(entry)
    if saved is None:  # removed or damaged between the save and the load: train on the rows built here
        return dataset, report, None
    return *saved, entry


def _broadcast_entry(entry: Path | None) -> Path | None:
    """Global rank 0's cache entry, on every rank of an initialised ``torch.distributed`` group of more than one
    process; ``entry`` itself otherwise. ``accelerate`` sends it from the device ``torch.distributed`` needs (the
    current CUDA device under NCCL, which the launch set up; the CPU under gloo)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return entry
    from accelerate.utils import broadcast_object_list

    shared = broadcast_object_list([None if entry is None else str(entry)], from_process=0)[0]
    return None if shared is None else Path(shared)


def build_sft_dataset_on_ranks(
    args: SFTScriptArguments, tokenizer: PreTrainedTokenizerBase | None, training_args
) -> tuple[Dataset, SFTDataReport]:
    """:func:`build_sft_dataset` in every process of a launch (``training_args``: its ``SFTConfig``, whose
    truncation the end-of-turn step follows when there is a tokenizer), the data converted once per cache folder.

    Global rank 0 builds first (or finds its cache entry), while the others wait; the entry's path goes to every
    rank. A rank that can read that entry (a cache folder shared by the nodes, or the same node) loads it, without
    loading the sources again (a ``load_dataset`` per source, Hub calls included). The others (another node's local
    disk, or no entry: cache off or not writable) build as :func:`build_sft_dataset` does, each node's local main
    first, so the other ranks of that node find its entry. Only rank 0 measures the thinking lengths when it builds
    for itself (it alone prints and saves the report); a cache entry always carries them. In a single process this
    is :func:`build_sft_dataset`.
    """
    cache_dir = data_cache_dir(args)
    truncation = None if tokenizer is None else Truncation.of(training_args)
    rank = training_args.process_index
    result, entry, error = None, None, None
    with training_args.main_process_first(local=False, desc="SFT data"):
        if rank == 0:
            try:
                dataset, report, entry = _build_or_load(args, tokenizer, True, cache_dir, truncation)
                result = dataset, report
            except Exception as err:  # raised below, once every rank has passed the broadcast
                error = err
    entry = _broadcast_entry(entry)
    with training_args.main_process_first(local=True, desc="SFT data"):
        if error is not None:  # rank 0, a local main: leaving releases the ranks that wait (they meet it too)
            raise error
        if result is None and entry is not None and (entry / "report.json").is_file():
            result = _load_entry(entry)
            if result is not None:
                logger.info("SFT data of rank 0 loaded from %s", entry)
        if result is None:
            result = build_sft_dataset(
                args, tokenizer, measure_lengths=False, cache_dir=cache_dir, truncation=truncation
            )
    return result
