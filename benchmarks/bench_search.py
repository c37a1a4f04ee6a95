"""Benchmark the REER search: the lock-step batched ``datasets.map`` against the per-row loop a user would write.

Same model, dtype, pairs, budgets and seeds in one process, modes interleaved:
- naive: one row at a time (``map_batch_size=1``): its own generate call for ``z0``, then per step one generate call
  for its K rewrites and a scorer call without prefix reuse or carried caches;
- lockstep: every row in one map batch: one generate call per phase for all rows, one scorer call for all candidates
  with the prefix shared by the K candidates of a row computed once and carried from step to step.
Sampling differs between the modes (batch composition changes the random draws), so the comparison is throughput:
rows/s, generated tokens/s and the time split. The last line of output is one JSON object.

    python benchmarks/bench_search.py --quick                         # CPU, the demo model, ~2 minutes on 2 cores
    python benchmarks/bench_search.py --device cuda --rows 8 --max_new_tokens 512
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter

from datasets import Dataset

from reer_hf.core.data import demo_pairs
from reer_hf.core.models import DEMO_MODEL, load_causal_lm, resolve_device, resolve_dtype
from reer_hf.generation import TransformersGenerator
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.config import FilterConfig, SearchConfig
from reer_hf.synthesis.search import Searcher, search_features


def run_mode(model, tokenizer, pairs, args, lockstep: bool) -> dict:
    scorer_cfg = ScorerConfig(
        scorer_model=args.model,
        scorer_prefix_reuse=lockstep,
        scorer_carry_prefixes=32 if lockstep else 0,
        scorer_max_length=8192,
    )
    search_cfg = SearchConfig(
        search_num_expansion=args.k,
        search_max_step=args.max_step,
        search_stop_thresh=0.0,  # never stop early: both modes do every step
        search_max_new_tokens=args.max_new_tokens,
        search_edit_max_new_tokens=args.edit_max_new_tokens,
        search_min_rollout_tokens=1,
        search_repetition_penalty=1.1,
        search_edit_format="refine",
        search_segment_min_chars=40,
        search_min_gain="0",  # any improvement: no noise floor measured (an fp32 model copy) inside the timed map
    )
    generator = TransformersGenerator(model, tokenizer, batch_size=64)
    # The demo model rarely closes its thinking within these budgets: keep such rows in the search (as the demo does)
    filters = FilterConfig(filter_end_of_thinking=False)
    searcher = Searcher(generator, Scorer(tokenizer, scorer_cfg, model=model), search_cfg, filters)
    ds = Dataset.from_list(pairs)
    features = ds.features.copy()
    features.update(search_features())
    start = time.perf_counter()
    out = ds.map(
        searcher,
        batched=True,
        batch_size=len(pairs) if lockstep else 1,
        with_indices=True,
        features=features,
        load_from_cache_file=False,
        keep_in_memory=True,
    )
    seconds = time.perf_counter() - start
    steps = sum(len(t) for t in out["trace"])
    return {
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(out) / seconds, 4),
        "generated_tokens": generator.stats["tokens"],
        "generated_tokens_per_s": round(generator.stats["tokens"] / searcher.stats["generator_seconds"], 1),
        "generator_seconds": round(searcher.stats["generator_seconds"], 2),
        "scorer_seconds": round(searcher.stats["scorer_seconds"], 2),
        "scored_tokens": searcher.stats["scored_tokens"],
        "generator_calls": searcher.stats["generator_calls"],
        "scorer_calls": searcher.stats["scorer_calls"],
        "search_steps": steps,
        "status": dict(sorted(Counter(out["status"]).items())),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEMO_MODEL)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max_step", type=int, default=3)
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--edit_max_new_tokens", type=int, default=96)
    parser.add_argument("--runs", type=int, default=1, help="Interleaved runs of each mode; the best is reported.")
    parser.add_argument("--quick", action="store_true", help="4 rows, 2 steps, short budgets: ~2 minutes on 2 cores.")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.max_step, args.max_new_tokens, args.edit_max_new_tokens = 4, 2, 128, 48
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    model, tokenizer = load_causal_lm(args.model, dtype=dtype, device=str(device))
    pairs = [{"query": p["query"], "answer": p["answer"]} for p in demo_pairs()[: args.rows]]
    results: dict[str, list[dict]] = {"naive": [], "lockstep": []}
    for _ in range(args.runs):
        for mode in ("naive", "lockstep"):
            results[mode].append(run_mode(model, tokenizer, pairs, args, lockstep=mode == "lockstep"))
            print(mode, json.dumps(results[mode][-1]), file=sys.stderr)
    best = {mode: min(runs, key=lambda r: r["seconds"]) for mode, runs in results.items()}
    summary = {
        "model": args.model,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "rows": args.rows,
        "k": args.k,
        "max_step": args.max_step,
        "naive": best["naive"],
        "lockstep": best["lockstep"],
        "speedup": round(best["naive"]["seconds"] / best["lockstep"]["seconds"], 3),
        "generation_speedup": round(best["naive"]["generator_seconds"] / best["lockstep"]["generator_seconds"], 3),
        "scoring_speedup": round(best["naive"]["scorer_seconds"] / best["lockstep"]["scorer_seconds"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
