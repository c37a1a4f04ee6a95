"""Benchmark the REER scorer on a realistic search workload against the naive way, in one process.

Workload: the bundled demo pairs (real prose). Each pair gets a thinking trajectory of 300-1500 tokens assembled from
real paragraphs; then, as in the search, a left-to-right pass: at step ``s`` every pair's segment ``s`` is rewritten
``K`` times (K=2, over the first 10 segments) and all candidates of all pairs are scored in one call
(lock-step); one candidate is accepted.

Modes, same model and dtype:
- naive: per row, one full-sequence forward, log-softmax over all logits, then the scored tokens are picked;
- scorer without prefix reuse; scorer with every option (prefix reuse across candidates and steps). Both scorer
  modes compile the model's elementwise blocks (``scorer_compile``; ``--no_compile`` runs them eagerly), so
  ``prefix_reuse_speedup`` measures reuse alone.
The last line of output is one JSON object. ``--quick`` (2 pairs, steps 0, 4 and 8 of the pass: short, middle and long
shared prefixes) fits a break: about 2 minutes on 2 CPU cores; the default workload gives the full picture.
``--repeats 3`` times each step three times per mode (interleaved, carried caches restored) and keeps the fastest,
since timings on a shared CPU vary up to 2.5x from one second to the next.

    python benchmarks/bench_scorer.py --quick
    python benchmarks/bench_scorer.py --quick --repeats 3 --profile       # the README's figures, and where time goes
    python benchmarks/bench_scorer.py --device cuda --dtype bf16            # on a GPU
    python benchmarks/bench_scorer.py --device cuda --vllm                  # + vLLM prompt log-probs
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import sys
import time
from collections import Counter

import torch

from reer_hf.core.data import demo_pairs
from reer_hf.core.models import DEMO_MODEL, load_causal_lm, resolve_device, resolve_dtype, resolve_model
from reer_hf.core.segment import segment
from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import EncodedRow, Scorer
from reer_hf.scoring.vllm_backend import VLLMLogprobs

OPENERS = ["Okay, I am given a scene to write in a very particular voice.", "Alright, the user wants a passage."]


def build_workload(tokenizer, n_pairs: int, max_step: int, k: int, seed: int = 0):
    """The scoring calls of a lock-step search pass: per step, the K candidates of every still-active pair.

    Each pair gets a trajectory of 300-1500 tokens made of real paragraphs; step ``s`` rewrites segment ``s`` (a pass
    over the first ``max_step`` segments, as in the paper); one candidate is accepted on even steps.
    """
    pairs = demo_pairs()[:n_pairs]
    pool = [p for pair in demo_pairs() for p in segment(pair["answer"]) + [pair["query"]]]
    n_tok = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    trajectories = []
    for i, _ in enumerate(pairs):
        target = 300 + (i * 397 + seed * 101) % 1200  # 300..1500 tokens
        parts, j = [OPENERS[i % 2]], i * 7
        while n_tok("\n\n".join(parts)) < target:
            parts.append(pool[j % len(pool)])
            j += 3
        trajectories.append(parts)
    steps = []
    for s in range(max_step):
        rows = []
        for i, pair in enumerate(pairs):
            z = trajectories[i]
            if s >= len(z):
                continue  # this pair's pass is over
            for c in range(k):
                rewrite = pool[(i * 11 + s * 5 + c * 13) % len(pool)]
                rows.append((pair["query"], "\n\n".join(z[:s] + [rewrite] + z[s + 1 :]), pair["answer"]))
            if s % 2 == 0:
                z[s] = pool[(i * 11 + s * 5) % len(pool)]
        if rows:
            steps.append(rows)
    return steps


@torch.inference_mode()
def naive_logprobs(model, rows: list[EncodedRow]) -> list[torch.Tensor]:
    """What a user writes first: one forward per row over the whole sequence, log-softmax over every logit."""
    out = []
    device = next(model.parameters()).device
    for row in rows:
        ids = torch.tensor([row.input_ids], device=device)
        logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)[0]
        positions = torch.tensor(row.scored, device=device)
        out.append(logprobs[positions - 1, ids[0, positions]].cpu())
    return out


class NaiveBackend:
    def __init__(self, model):
        self.model = model
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.stats: Counter = Counter()

    def __call__(self, rows):
        self.stats["forward_calls"] += len(rows)
        self.stats["forward_tokens"] += sum(len(row.input_ids) for row in rows)
        self.stats["attention_pairs"] += sum(len(row.input_ids) * (len(row.input_ids) + 1) // 2 for row in rows)
        return naive_logprobs(self.model, rows)


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(scorer: Scorer, steps, device) -> tuple[float, list[tuple[float, float]]]:
    times, scores = run_interleaved({"one": scorer}, steps, device)
    return times["one"], scores["one"]


def run_interleaved(
    scorers: dict[str, Scorer], steps, device, repeats: int = 1
) -> tuple[dict[str, float], dict[str, list]]:
    """Every step is scored by every mode, in a rotating order, ``repeats`` times; a mode's time for the step is its
    fastest repeat. Noise on this shared machine comes in bursts of seconds (a plain matmul varies 2.5x), so it falls
    on all modes alike and the minimum of close repeats filters it. Before each repeat the scorer's carried prefix
    caches are restored to what they were before the step, so every repeat does exactly the same work."""
    times = dict.fromkeys(scorers, 0.0)
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in scorers}
    names = list(scorers)
    for s, rows in enumerate(steps):
        states = {name: _state(scorer) for name, scorer in scorers.items()}
        best = dict.fromkeys(scorers, math.inf)
        for r in range(repeats):
            shift = (s + r) % len(names)
            for name in names[shift:] + names[:shift]:
                if r:
                    _restore(scorers[name], states[name])
                sync(device)
                start = time.perf_counter()
                results = scorers[name].score(*zip(*rows, strict=True))
                sync(device)
                best[name] = min(best[name], time.perf_counter() - start)
                if not r:
                    scores[name].extend((res.score, res.nll) for res in results)
        for name in names:
            times[name] += best[name]
    return times, scores


def _state(scorer: Scorer):
    """What a repeat of a step must start from: the backend's carried prefix caches and counters."""
    backend = scorer.backend
    return copy.deepcopy((getattr(backend, "prefix_cache", None), getattr(backend, "stats", None)))


def _restore(scorer: Scorer, state) -> None:
    carried, stats = copy.deepcopy(state)
    if carried is not None:
        scorer.backend.prefix_cache = carried
    if stats is not None:
        scorer.backend.stats = stats


#: Dense bf16 tensor-core peaks (FLOP/s, no sparsity) by the name CUDA reports, most specific first; for MFU.
PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "H200": 989e12,
    "H800": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
}


def peak_bf16_flops(device: torch.device) -> float | None:
    """The GPU's dense bf16 peak (REER_PEAK_TFLOPS overrides it); None on a CPU or an unknown GPU."""
    if os.environ.get("REER_PEAK_TFLOPS"):
        return float(os.environ["REER_PEAK_TFLOPS"]) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def matmul_params(model) -> int:
    """Parameters that cost 2 FLOPs per token in a forward: all but the input embedding (a lookup), the LM head
    counted even when it shares that weight."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    return sum(p.numel() for p in model.parameters()) - embedding.numel() + (embedding.numel() if tied else 0)


def max_diff(a: list[tuple[float, float]], b: list[tuple[float, float]], which: int = 0) -> float:
    """Largest difference of the scores (``which=0``) or of the unclipped NLLs (``which=1``)."""
    return max(abs(x[which] - y[which]) for x, y in zip(a, b, strict=True))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEMO_MODEL, help="scorer model (default: the built-in demo model)")
    parser.add_argument("--random_weights", action="store_true", help="init the model's config randomly (timing)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--max_step", type=int, default=10, help="segments rewritten per pass (paper: 10)")
    parser.add_argument(
        "--step_stride",
        type=int,
        default=1,
        help="time every n-th step of the pass (early steps share short prefixes, late ones long prefixes)",
    )
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--token_budget", type=int, default=ScorerConfig.scorer_token_budget)
    parser.add_argument(
        "--quick", action="store_true", help="2 pairs, steps 0, 4 and 8 of the pass: about 2 minutes on 2 CPU cores"
    )
    parser.add_argument(
        "--fp32_check_rows", type=int, default=6, help="rows re-scored in fp32 for the exactness check"
    )
    parser.add_argument(
        "--no_compile", action="store_true", help="the scorer modes run eagerly (default: scorer_compile, an option)"
    )
    parser.add_argument("--vllm", action="store_true", help="also time vLLM prompt log-probs (GPU, optional)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one scorer step")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="each step is timed this many times per mode (interleaved); its fastest counts (CPU timings vary 2.5x)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.step_stride, args.fp32_check_rows = 2, 4, 2

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(args.model)
        torch.manual_seed(0)
        with torch.device(device):  # initialise on the device: an 8B model inits in seconds there
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=dtype).eval()
        model.requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        model, tokenizer = load_causal_lm(args.model, dtype=dtype, device=str(device))
    steps = build_workload(tokenizer, args.pairs, args.max_step, args.k)[:: args.step_stride]
    config = ScorerConfig(
        scorer_model=args.model,
        scorer_token_budget=args.token_budget,
        scorer_max_length=None,
        scorer_compile=not args.no_compile,
    )
    no_reuse = ScorerConfig(**{**vars(config), "scorer_prefix_reuse": False})

    scorers = {
        "naive": Scorer(tokenizer, no_reuse, backend=NaiveBackend(model)),
        "plain": Scorer(tokenizer, no_reuse, model=model),
        "lean": Scorer(tokenizer, config, model=model),
    }
    lean = scorers["lean"]

    encoded = [e for rows in steps for e in lean.encode(*zip(*rows, strict=True))]
    tokens = sum(len(e.input_ids) for e in encoded)
    scored_tokens = sum(len(e.scored) for e in encoded)
    for scorer in scorers.values():  # warm-up (kernels, allocator), then forget what it carried and counted
        scorer.score(*zip(*steps[0][:2], strict=True))
        scorer.backend.stats.clear()
        getattr(scorer.backend, "reset", lambda: None)()
    times, scores = run_interleaved(scorers, steps, device, args.repeats)
    work = {name: dict(scorer.backend.stats) for name, scorer in scorers.items()}
    (t_naive, t_plain, t_lean), (s_naive, s_plain, s_lean) = times.values(), scores.values()

    # Exactness in fp32 on a subset: the scorer (both modes) against the naive computation.
    model32 = model.float()
    subset = [rows[: args.fp32_check_rows] for rows in steps[:2]]
    _, r_naive = run(Scorer(tokenizer, no_reuse, backend=NaiveBackend(model32)), subset, device)
    _, r_plain = run(Scorer(tokenizer, no_reuse, model=model32), subset, device)
    _, r_lean = run(Scorer(tokenizer, config, model=model32), subset, device)
    model.to(dtype)
    # The run dtype's numeric noise, the margin a search decision must clear: the scorer in the run dtype against
    # the naive computation in fp32, on the same rows.
    starts = [sum(len(rows) for rows in steps[:i]) for i in range(len(subset))]
    in_run_dtype = [s_lean[start + j] for start, rows in zip(starts, subset, strict=True) for j in range(len(rows))]
    noise = sorted(abs(a[0] - b[0]) for a, b in zip(in_run_dtype, r_naive, strict=True))

    result = {
        "model": args.model + (" (random weights)" if args.random_weights else ""),
        "dtype": str(dtype).replace("torch.", ""),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "rows": len(encoded),
        "steps": len(steps),
        "step_stride": args.step_stride,
        "k": args.k,
        "repeats": args.repeats,
        "compile": scorers["lean"].backend.compile,
        "tokens": tokens,
        "scored_tokens": scored_tokens,
        "naive_s": round(t_naive, 3),
        "scorer_no_reuse_s": round(t_plain, 3),
        "scorer_s": round(t_lean, 3),
        "naive_tokens_per_s": round(tokens / t_naive, 1),
        "scorer_no_reuse_tokens_per_s": round(tokens / t_plain, 1),
        "scorer_tokens_per_s": round(tokens / t_lean, 1),
        "speedup": round(t_naive / t_lean, 3),
        "lean_head_speedup": round(t_naive / t_plain, 3),
        "prefix_reuse_speedup": round(t_plain / t_lean, 3),
        "max_abs_score_diff_run_dtype": max(max_diff(s_naive, s_plain), max_diff(s_naive, s_lean)),
        "max_abs_score_diff_fp32": max(max_diff(r_naive, r_plain), max_diff(r_naive, r_lean)),
        "max_abs_nll_diff_fp32": max(max_diff(r_naive, r_plain, 1), max_diff(r_naive, r_lean, 1)),
        "dtype_noise_max": noise[-1],
        "dtype_noise_median": statistics.median(noise),
        # the work prefix reuse removes: tokens through the model, and causal attention pairs (it saves far fewer)
        "forward_tokens": {name: w["forward_tokens"] for name, w in work.items()},
        "forward_token_ratio": round(work["plain"]["forward_tokens"] / work["lean"]["forward_tokens"], 3),
        "attention_pair_ratio": round(work["plain"]["attention_pairs"] / work["lean"]["attention_pairs"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    # Model FLOPs utilisation, the usual 2 FLOPs per matmul parameter per token through the model: attention left
    # out, the LM head counted on every token (the scorer's runs on the scored tokens only)
    peak, params = peak_bf16_flops(device), matmul_params(model)
    result.update(params=params, peak_bf16_tflops=peak and peak / 1e12)
    for name, mode, seconds in (
        ("naive", "naive", t_naive),
        ("scorer_no_reuse", "plain", t_plain),
        ("scorer", "lean", t_lean),
    ):
        result[f"{name}_mfu"] = round(2 * params * work[mode]["forward_tokens"] / seconds / peak, 4) if peak else None
    if args.vllm:
        result.update(bench_vllm(args, tokenizer, config, steps, s_lean))
    if args.profile:
        profile(lean, steps[-1], device)
    print(json.dumps(result))
    return result


def bench_vllm(args, tokenizer, config: ScorerConfig, steps, reference: list[tuple[float, float]]) -> dict:
    """vLLM prompt log-probs on the same rows (needs vllm and a GPU; real weights only)."""
    try:
        backend = VLLMLogprobs(resolve_model(args.model), config, "bfloat16", max_model_len=None)
    except Exception as err:  # report, don't crash the benchmark: vLLM is optional
        return {"vllm_error": f"{type(err).__name__}: {err}"[:300]}
    scorer = Scorer(tokenizer, config, backend=backend)
    scorer.score(*zip(*steps[0][:2], strict=True))
    t, scores = run(scorer, steps, torch.device("cuda"))
    tokens = sum(len(e.input_ids) for rows in steps for e in scorer.encode(*zip(*rows, strict=True)))
    return {
        "vllm_s": round(t, 3),
        "vllm_tokens_per_s": round(tokens / t, 1),
        "vllm_max_abs_score_diff": max_diff(scores, reference),
        "vllm_max_abs_nll_diff": max_diff(scores, reference, 1),
    }


def profile(scorer: Scorer, rows, device):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        scorer.score(*zip(*rows, strict=True))
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15), file=sys.stderr)


if __name__ == "__main__":
    out = main()
    sys.exit(0 if math.isfinite(out["max_abs_nll_diff_fp32"]) else 1)
