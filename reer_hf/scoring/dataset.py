"""Scoring a dataset of pairs end to end: load, ``datasets.map`` the scorer, save, summarise."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections import Counter
from pathlib import Path

from reer_hf.core.data import load_pairs
from reer_hf.core.options import semantic_options
from reer_hf.scoring.config import ScorerConfig, ScoreScriptArguments
from reer_hf.scoring.scorer import STATUS_OK, Scorer


def score_dataset(args: ScoreScriptArguments, scorer_config: ScorerConfig, scorer: Scorer | None = None) -> dict:
    """Score ``args.dataset_name``, save it (``save_to_disk`` and parquet) and return the run summary."""
    ds = load_pairs(
        args.dataset_name, args.dataset_split, args.dataset_query_column, args.dataset_answer_column, args.max_rows
    )
    if args.dataset_thinking_column and args.dataset_thinking_column not in ds.column_names:
        raise ValueError(f"Thinking column {args.dataset_thinking_column!r} not in {ds.column_names}")
    scorer = scorer or Scorer.from_config(scorer_config)
    start = time.perf_counter()
    scored = ds.map(
        scorer.score_batch,
        batched=True,
        batch_size=args.map_batch_size,
        fn_kwargs={"thinking_column": args.dataset_thinking_column},
        load_from_cache_file=False,
        desc="REER scoring",
        # Named, so datasets never pickles the scorer (and its model) to fingerprint the map.
        new_fingerprint=_map_fingerprint(ds._fingerprint, scorer.config, args),
    )
    elapsed = time.perf_counter() - start
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    scored.save_to_disk(str(out / "dataset"))
    scored.to_parquet(str(out / "scored.parquet"))
    summary = summarize(scored, elapsed)
    summary.update(model=scorer_config.scorer_model, dataset=args.dataset_name, output_dir=str(out))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _map_fingerprint(data_print: str, config: ScorerConfig, args: ScoreScriptArguments) -> str:
    """What the scored columns depend on: the rows, the scoring options and the thinking column."""
    semantic = semantic_options(config)
    payload = json.dumps([data_print, semantic, args.dataset_thinking_column], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def summarize(scored, elapsed: float) -> dict:
    ok = [i for i, s in enumerate(scored["score_status"]) if s == STATUS_OK]
    scores = [scored["score"][i] for i in ok]
    ppls = [scored["score_ppl"][i] for i in ok]
    tokens = sum(n for n in scored["score_n_tokens"] if n)
    return {
        "rows": len(scored),
        "status": dict(Counter(scored["score_status"])),
        "score_mean": statistics.fmean(scores) if scores else math.nan,
        "score_min": min(scores, default=math.nan),
        "score_max": max(scores, default=math.nan),
        "ppl_median": statistics.median(ppls) if ppls else math.nan,
        "tokens": tokens,
        "scored_tokens": sum(scored["score_n_scored"]),
        "seconds": round(elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1) if elapsed else None,
    }
