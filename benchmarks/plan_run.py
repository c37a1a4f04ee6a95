"""The cost of the paper's REER run, on paper: the tokens each model must process and the GPU-hours they take.

The per-call lengths come from a real synthesis run (``--run_dir``: its ``summary.json``, ``reer.parquet`` and
``run_config.json``); the number of calls comes from the paper's settings (arXiv 2509.06160 and its official code,
github.com/multimodal-art-projection/REER_DeepWriter): ``--pairs`` query/answer pairs, ``--num_rollouts`` initial
trajectories each, ``--num_expansion`` (K) rewrites per step and ``--max_step`` steps. Measured from the run:

- generator prefill tokens per request: ``generator_prompt_tokens / generator_requests`` of ``summary.json``;
- generator decode tokens per sample: ``generated_tokens`` over the samples drawn (one ``z0`` per initial request,
  K per step, the steps read from the rows' traces);
- scorer tokens per sequence: ``scored_tokens`` over the sequences the run sent to the scorer (each row's ``z0``,
  every candidate that reached the scorer, and under same-pass acceptance the current trajectory once per step).
  ``scored_tokens`` counts every such sequence in full (context, thinking and answer), before the prefix reuse of
  our scorer, so it is what the official code's vLLM prompt-logprobs requests process for the same sequences.

The plan, per trajectory (``--search_counts full``, the default, the most the official code does): 1 + max_step
generator requests (the official code asks for the ``num_rollouts`` initial trajectories of a pair in one request)
and 1 + K * max_step samples; 1 + K * max_step scorer sequences, each in full. ``--search_counts measured`` takes the
run's own share of searched rows and its steps per searched row instead. Every length is multiplied by one factor,
``--tokens_scale`` (default 1: the run's own lengths), or ``--thinking_tokens N``, which sets it to N over the run's
mean thinking length: the thinking is the whole initial decode and most of every edit prompt and scorer sequence at
the paper's lengths, so this is the first-order correction from a small run to the paper's; it also scales the
query, answer and prompt text and the one-paragraph rewrites, so it overstates those.

GPU-hours need a throughput per GPU for each phase (``--generator_prefill_tok_s_per_gpu``,
``--generator_decode_tok_s_per_gpu``, ``--scorer_tok_s_per_gpu``: a replica's tokens/s over its GPUs); there are no
defaults, since no public figure covers these models in this workload (benchmarks/README.md derives example values
and says how). Wall-clock hours follow for the official layout: the generator served at tensor-parallel 4, the
scorer at tensor-parallel 2, ``--generator_replicas`` and ``--scorer_replicas`` of each.

    python benchmarks/plan_run.py --run_dir outputs/synthesis-demo
    python benchmarks/plan_run.py --run_dir outputs/synthesis-demo --thinking_tokens 4000 --markdown \\
        --generator_prefill_tok_s_per_gpu 5300 --generator_decode_tok_s_per_gpu 400 --scorer_tok_s_per_gpu 20500
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

#: The paper's run: 20K trajectories (from 16K pairs; every kept trajectory was searched, so at least 20K rows).
PAPER_PAIRS = 20_000
#: The official code's config.yaml: num_rollouts 1, num_expansion 2, max_step 10.
PAPER_ROLLOUTS, PAPER_EXPANSION, PAPER_MAX_STEP = 1, 2, 10
#: The official server.sh: the generator at -tp 4, the scorer at -tp 2, both with --max-model-len 32000.
OFFICIAL_GENERATOR_TP, OFFICIAL_SCORER_TP, OFFICIAL_MAX_MODEL_LEN = 4, 2, 32_000
#: The official scoring request keeps the judge's max_tokens (100): each scoring may also decode up to this many.
OFFICIAL_SCORER_MAX_TOKENS = 100
#: Candidate statuses set before scoring: such a candidate never reached the scorer.
UNSCORED = {"generator_error", "truncated", "no_refine", "empty_rewrite", "malformed", "unchanged", "leak"}
SCORED_TOKENS_COUNTING = (
    "full sequences: scored_tokens counts every sequence sent to the scorer in full (context, thinking, answer), "
    "before prefix reuse; the plan's scorer tokens are the official code's, every candidate's full sequence"
)


def measure(run_dir: str | Path) -> dict:
    """The run's counts and per-call lengths (see the module docstring); raises ValueError for a run that predates
    prompt-token counting or has no rows."""
    run = Path(run_dir)
    summary_path, parquet_path = run / "summary.json", run / "reer.parquet"
    for path in (summary_path, parquet_path):
        if not path.is_file():
            raise ValueError(f"{path} not found: --run_dir must be a synthesis output folder")
    summary = json.loads(summary_path.read_text())
    if "generator_prompt_tokens" not in summary:
        raise ValueError(
            f"{summary_path} has no generator_prompt_tokens: the run predates prompt-token counting, so its "
            "generator prefill cannot be measured; run the synthesis again with this version of reer_hf"
        )
    if summary["generator_prompt_tokens"] <= 0 < summary["generator_requests"]:
        raise ValueError(
            f"{summary_path}: generator_prompt_tokens is 0 for {summary['generator_requests']} requests: the "
            "generator reported no prompt tokens (a server that sends no usage?), so its prefill cannot be measured"
        )
    config_path = run / "run_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    columns = ["initial_score", "drop_reason", "trace", "z_star_tokens"]
    rows = pq.read_table(parquet_path, columns=columns).to_pylist()
    if not rows:
        raise ValueError(f"{parquet_path} has no rows")
    acceptance = config.get("search_acceptance", "same_pass")
    steps = edit_samples = sequences = searched = 0
    thinking = []
    for row in rows:
        initial = row["initial_score"] is not None or (row["drop_reason"] or "").startswith("score_")
        searched += row["initial_score"] is not None
        sequences += initial
        for step in row["trace"] or []:
            steps += 1
            edit_samples += len(step["candidate_status"])
            sent = sum(status not in UNSCORED for status in step["candidate_status"])
            sequences += sent + (acceptance == "same_pass" and sent > 0)
        if row["z_star_tokens"] is not None:
            thinking.append(row["z_star_tokens"])
    initial_requests = summary["generator_requests"] - steps  # one request per row for z0, one per row and step
    if initial_requests <= 0:
        raise ValueError(f"{summary_path}: generator_requests ({summary['generator_requests']}) <= steps ({steps})")
    samples = initial_requests + edit_samples
    rollouts = int(config.get("search_num_rollouts", 1))
    pairs = len(rows) / rollouts
    prompt, generated, scored = (
        summary["generator_prompt_tokens"],
        summary["generated_tokens"],
        summary["scored_tokens"],
    )
    return {
        "run_dir": str(run),
        "rows": len(rows),
        "pairs": pairs,
        "num_rollouts": rollouts,
        "num_expansion": config.get("search_num_expansion"),
        "max_step": config.get("search_max_step"),
        "acceptance": acceptance,
        "generator_requests": summary["generator_requests"],
        "generator_samples": samples,
        "rows_searched": searched,
        "steps": steps,
        "steps_per_searched_row": round(steps / searched, 4) if searched else 0.0,
        "candidates_per_step": round(edit_samples / steps, 4) if steps else None,
        "scorer_sequences": sequences,
        "generator_prompt_tokens": prompt,
        "generated_tokens": generated,
        "scored_tokens": scored,
        "scored_tokens_counting": SCORED_TOKENS_COUNTING,
        "per_pair": {
            "generator_prompt_tokens": round(prompt / pairs, 1),
            "generated_tokens": round(generated / pairs, 1),
            "scored_tokens": round(scored / pairs, 1),
        },
        "prompt_tokens_per_request": round(prompt / summary["generator_requests"], 3),
        "generated_tokens_per_sample": round(generated / samples, 3),
        "scorer_tokens_per_sequence": round(scored / sequences, 3) if sequences else 0.0,
        "thinking_tokens_mean": round(sum(thinking) / len(thinking), 3) if thinking else None,
    }


def plan(
    measured: dict,
    pairs: int = PAPER_PAIRS,
    num_rollouts: int = PAPER_ROLLOUTS,
    num_expansion: int = PAPER_EXPANSION,
    max_step: int = PAPER_MAX_STEP,
    search_counts: str = "full",
    tokens_scale: float = 1.0,
    throughput: dict[str, float | None] | None = None,
    generator_tp: int = OFFICIAL_GENERATOR_TP,
    scorer_tp: int = OFFICIAL_SCORER_TP,
    generator_replicas: int = 1,
    scorer_replicas: int = 1,
    max_model_len: int = OFFICIAL_MAX_MODEL_LEN,
) -> dict:
    """Tokens per role and, for the throughputs given (tokens/s per GPU), GPU-hours and wall-clock hours."""
    rows = pairs * num_rollouts
    if search_counts == "full":
        searched, steps = float(rows), float(max_step)
    elif search_counts == "measured":
        searched, steps = rows * measured["rows_searched"] / measured["rows"], measured["steps_per_searched_row"]
    else:
        raise ValueError(f"search_counts must be 'full' or 'measured', got {search_counts!r}")
    edit_requests = searched * steps
    requests = pairs + edit_requests  # the official code asks for a pair's rollouts in one request (n=num_rollouts)
    samples = rows + edit_requests * num_expansion
    sequences = searched * (1 + num_expansion * steps)
    tokens = {
        "generator_prefill": requests * measured["prompt_tokens_per_request"] * tokens_scale,
        "generator_decode": samples * measured["generated_tokens_per_sample"] * tokens_scale,
        "scorer": sequences * measured["scorer_tokens_per_sequence"] * tokens_scale,
    }
    notes = []
    sequence_tokens = measured["scorer_tokens_per_sequence"] * tokens_scale
    if sequence_tokens > max_model_len:
        notes.append(
            f"a scorer sequence of {sequence_tokens:.0f} tokens exceeds --max-model-len {max_model_len}: the "
            "official servers would reject such requests; lower the scale"
        )
    if search_counts == "measured" and measured["max_step"] not in (None, max_step):
        notes.append(f"the run's max_step is {measured['max_step']}, the plan's {max_step}: measured steps differ")
    result = {
        "settings": {
            "pairs": pairs,
            "num_rollouts": num_rollouts,
            "num_expansion": num_expansion,
            "max_step": max_step,
            "search_counts": search_counts,
            "tokens_scale": tokens_scale,
        },
        "plan": {
            "trajectories": rows,
            "rows_searched": searched,
            "steps_per_searched_row": steps,
            "generator_requests": requests,
            "generator_samples": samples,
            "scorer_sequences": sequences,
            "scorer_tokens_per_sequence": sequence_tokens,
        },
        "tokens": {key: round(value) for key, value in tokens.items()},
        "scorer_decode_tokens_max": round(sequences * OFFICIAL_SCORER_MAX_TOKENS),
        "layout": {
            "generator_tp": generator_tp,
            "generator_replicas": generator_replicas,
            "scorer_tp": scorer_tp,
            "scorer_replicas": scorer_replicas,
            "gpus": generator_tp * generator_replicas + scorer_tp * scorer_replicas,
        },
        "throughput_tok_s_per_gpu": dict(throughput or {}),
        "gpu_hours": None,
        "wall_clock_hours": None,
        "notes": notes,
    }
    rates = result["throughput_tok_s_per_gpu"]
    missing = [f"--{name}_tok_s_per_gpu" for name in tokens if not rates.get(name)]
    if missing:
        notes.append("no GPU-hours: set " + ", ".join(missing))
        return result
    hours = {name: tokens[name] / rates[name] / 3600 for name in tokens}
    generator_gpu_hours = hours["generator_prefill"] + hours["generator_decode"]
    result["gpu_hours"] = {
        **hours,
        "generator": generator_gpu_hours,
        "total": generator_gpu_hours + hours["scorer"],
    }
    generator_wall = generator_gpu_hours / (generator_tp * generator_replicas)
    scorer_wall = hours["scorer"] / (scorer_tp * scorer_replicas)
    result["wall_clock_hours"] = {
        "generator": generator_wall,
        "scorer": scorer_wall,
        "overlapped": max(generator_wall, scorer_wall),  # both servers busy at once, as in the official run
        "serial": generator_wall + scorer_wall,
        "reserved_gpu_hours": max(generator_wall, scorer_wall) * result["layout"]["gpus"],
    }
    notes.append(
        f"not in the hours: the official scoring requests may each decode up to {OFFICIAL_SCORER_MAX_TOKENS} tokens "
        "(scorer_decode_tokens_max)"
    )
    return result


def rounded(value: object) -> object:
    """``value`` with every float rounded for printing (3 decimals, whole numbers as integers)."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 3)
    return value


def markdown(result: dict) -> str:
    """A short table of the plan: tokens and GPU-hours per role, then the wall clock."""
    hours = result["gpu_hours"] or {}
    lines = ["| role | tokens | tok/s per GPU | GPU-hours |", "| --- | ---: | ---: | ---: |"]
    for name, label in (
        ("generator_prefill", "generator prefill"),
        ("generator_decode", "generator decode"),
        ("scorer", "scorer (full sequences)"),
    ):
        rate = result["throughput_tok_s_per_gpu"].get(name)
        rate_text = f"{rate:,.0f}" if rate else "-"
        hours_text = f"{hours[name]:,.1f}" if hours else "-"
        lines.append(f"| {label} | {result['tokens'][name]:,} | {rate_text} | {hours_text} |")
    if hours:
        wall, layout = result["wall_clock_hours"], result["layout"]
        lines.append(f"| total | {sum(result['tokens'].values()):,} | | {hours['total']:,.1f} |")
        lines.append("")
        lines.append(
            f"Wall clock with {layout['generator_replicas']} generator replica(s) at TP {layout['generator_tp']} and "
            f"{layout['scorer_replicas']} scorer replica(s) at TP {layout['scorer_tp']} ({layout['gpus']} GPUs): "
            f"{wall['overlapped']:,.1f} h overlapped, {wall['serial']:,.1f} h serial."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="a synthesis output folder (summary.json, reer.parquet)")
    parser.add_argument("--pairs", type=int, default=PAPER_PAIRS, help="query/answer pairs (paper: 20K trajectories)")
    parser.add_argument("--num_rollouts", type=int, default=PAPER_ROLLOUTS, help="initial trajectories per pair")
    parser.add_argument("--num_expansion", type=int, default=PAPER_EXPANSION, help="rewrites per step (K)")
    parser.add_argument("--max_step", type=int, default=PAPER_MAX_STEP, help="segments rewritten per trajectory")
    parser.add_argument(
        "--search_counts",
        choices=("full", "measured"),
        default="full",
        help="full: every trajectory searched for max_step steps (the most); measured: the run's shares",
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--tokens_scale", type=float, default=None, help="multiply every measured length")
    scale.add_argument(
        "--thinking_tokens", type=float, default=None, help="scale lengths by this over the run's mean thinking"
    )
    for name, what in (
        ("generator_prefill", "generator prompt tokens"),
        ("generator_decode", "generator generated tokens"),
        ("scorer", "scorer sequence tokens"),
    ):
        parser.add_argument(f"--{name}_tok_s_per_gpu", type=float, default=None, help=f"{what}/s per GPU")
    parser.add_argument("--generator_tp", type=int, default=OFFICIAL_GENERATOR_TP)
    parser.add_argument("--scorer_tp", type=int, default=OFFICIAL_SCORER_TP)
    parser.add_argument("--generator_replicas", type=int, default=1)
    parser.add_argument("--scorer_replicas", type=int, default=1)
    parser.add_argument("--max_model_len", type=int, default=OFFICIAL_MAX_MODEL_LEN)
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table (before the JSON)")
    args = parser.parse_args(argv)
    measured = measure(args.run_dir)
    tokens_scale = args.tokens_scale if args.tokens_scale is not None else 1.0
    if args.thinking_tokens is not None:
        if not measured["thinking_tokens_mean"]:
            parser.error("--thinking_tokens: the run has no thinking lengths (z_star_tokens)")
        tokens_scale = args.thinking_tokens / measured["thinking_tokens_mean"]
    result = plan(
        measured,
        pairs=args.pairs,
        num_rollouts=args.num_rollouts,
        num_expansion=args.num_expansion,
        max_step=args.max_step,
        search_counts=args.search_counts,
        tokens_scale=tokens_scale,
        throughput={
            "generator_prefill": args.generator_prefill_tok_s_per_gpu,
            "generator_decode": args.generator_decode_tok_s_per_gpu,
            "scorer": args.scorer_tok_s_per_gpu,
        },
        generator_tp=args.generator_tp,
        scorer_tp=args.scorer_tp,
        generator_replicas=args.generator_replicas,
        scorer_replicas=args.scorer_replicas,
        max_model_len=args.max_model_len,
    )
    result = rounded({"measured": measured, **result})
    if args.markdown:
        print(markdown(result))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # a run that cannot be planned from: the reason, without a traceback
        sys.exit(f"plan_run.py: {err}")
