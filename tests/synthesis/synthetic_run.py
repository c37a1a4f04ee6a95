"""A synthesis output of any size without a model: rows shaped like a run's (statuses, drop reasons with their
evidence, traces of K candidates per step whose accepted rewrites replay to ``z_star``, scores with the same-pass noise
that can leave a final score above the first one), written by the run's own ``save_outputs``.

The tests use it for large-run behaviour; as a script it times the report of a large output and prints JSON:

    python tests/synthesis/synthetic_run.py --rows 20000 --output_dir /tmp/reer-synthetic-20k [--browser]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from datasets import Dataset, Features, Value

from reer_hf.core.data import demo_pairs
from reer_hf.core.formats import to_messages
from reer_hf.core.text import units
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.outputs import save_outputs, summarize
from reer_hf.synthesis.report import REPORT_FILE, build_report, write_report
from reer_hf.synthesis.trajectory import SEPARATOR, search_features

#: The vocabulary of the synthetic texts: the words of the bundled demo answers.
WORDS = tuple(sorted({w for pair in demo_pairs() for w in units(pair["answer"], "en")}))
MARGIN = 0.0005
FILTERED = ("repetition", "end_of_thinking", "too_long")
DROPPED = ("leak", "short_rollout", "single_segment")


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(WORDS, k=n)).capitalize() + "."


def _edit(rng: random.Random, segment: str) -> str:
    words = segment.split(" ")
    for _ in range(max(1, len(words) // 6)):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def _search(rng: random.Random, segments: list[str], steps: int, k: int) -> tuple[list[dict], list[str], float, float]:
    """A trace over ``segments``: each step K edits scored against the current trajectory re-scored in the same pass
    (so with noise), the best accepted above the margin. Returns the trace, final segments, first and last score."""
    initial = score = rng.uniform(1.2, 2.0)
    spread = rng.choice((0.01, 0.001))  # rows the generator helps, and rows where gains are near the noise
    final = list(segments)
    trace = []
    for step in range(min(steps, len(segments))):
        incumbent = score + rng.gauss(0, 2 * MARGIN)  # the same-pass re-score of the current trajectory
        candidates = [_edit(rng, final[step]) for _ in range(k)]
        rejected = "no_refine"
        if rng.random() < 0.1:
            candidates[0], rejected = None, rng.choice(("no_refine", "truncated", "leak", "unchanged"))
        scores = [None if c is None else incumbent - rng.gauss(0, spread) for c in candidates]
        record = trace_step(step, candidates, scores, incumbent, MARGIN, rejected=rejected)
        if record["accepted"]:
            final[step], score = candidates[record["chosen"]], scores[record["chosen"]]
        trace.append(record)
    return trace, final, initial, score


def trace_step(
    segment: int, candidates: list, scores: list, incumbent: float, margin: float, rejected: str = "no_refine"
) -> dict:
    """A trace step as the search writes it: gains against the incumbent (its same-pass score), the best candidate
    accepted when it clears the margin; a candidate without a score was rejected as ``rejected`` says."""
    gains = [None if s is None else incumbent - s for s in scores]
    status = [
        rejected if s is None else "below_margin" if 0 < g <= margin else "scored"
        for s, g in zip(scores, gains, strict=True)
    ]
    scored = [k for k, s in enumerate(scores) if s is not None]
    chosen = min(scored, key=lambda k: scores[k]) if scored else -1
    accepted = chosen >= 0 and gains[chosen] > margin
    return {
        "segment": segment,
        "candidates": candidates,
        "candidate_scores": scores,
        "candidate_status": status,
        "candidate_gains": gains,
        "cleared": [None if g is None else g > margin for g in gains],
        "incumbent_score": incumbent,
        "best_gain": gains[chosen] if chosen >= 0 else None,
        "margin": margin,
        "chosen": chosen,
        "accepted": accepted,
        "score_after": scores[chosen] if accepted else incumbent,
    }


def _evidence(reason: str, z: str, answer: str) -> dict:
    if reason == "repetition":
        return {"check": "top_ngram_share", "text": "the quiet town", "value": 0.41, "limit": 0.3}
    if reason == "end_of_thinking":
        return {"check": "unfinished", "text": z[-240:], "value": 4096.0, "limit": 4096.0}
    if reason == "too_long":
        return {"check": "thinking_tokens", "text": None, "value": 9000.0, "limit": 8192.0}
    return {"check": "leak", "text": " ".join(answer.split()[:14]), "value": 14.0, "limit": 12.0}


def synthetic_rows(n: int, seed: int = 0, steps: int = 10, k: int = 2, answer_words: int = 600) -> Dataset:
    """``n`` rows shaped like a synthesis run's output (the run's features; no model involved)."""
    rng = random.Random(seed)
    columns: dict[str, list] = {name: [] for name in ("query", "answer", *search_features())}
    for _ in range(n):
        query = "Write a story: " + _text(rng, 40)
        answer = "\n\n".join(_text(rng, answer_words // 6) for _ in range(6))
        roll = rng.random()
        status = "ok" if roll < 0.74 else "filtered" if roll < 0.86 else "dropped" if roll < 0.96 else "invalid"
        reason = {"filtered": rng.choice(FILTERED), "dropped": rng.choice(DROPPED), "invalid": "answer_empty"}.get(
            status
        )
        z0 = trace = initial = final = None
        segments: list[str] = []
        if status != "invalid":
            segments = [_text(rng, 60) for _ in range(8)]
            z0 = SEPARATOR.join(segments)
        if status in ("ok", "filtered"):
            trace, segments, initial, final = _search(rng, segments, steps, k)
        z_star = SEPARATOR.join(segments) if z0 else None
        values = {
            "query": query,
            "answer": answer if status != "invalid" else "",
            "language": "en",
            "z0": z0,
            "z_star": z_star,
            "initial_score": initial,
            "final_score": final,
            "initial_nll": initial,
            "final_nll": final,
            "n_segments": len(segments) if z0 else None,
            "trace": trace or [],
            "status": status,
            "drop_reason": reason,
            "drop_evidence": _evidence(reason, z0, answer) if reason in FILTERED + ("leak",) else None,
            "stop_reason": "max_step" if trace else None,
            "z_star_tokens": len(z_star.split()) if z_star else None,
            "generated_tokens": 3000,
            "scored_tokens": 60000,
            "messages": to_messages(query, z_star, answer) if status == "ok" else None,
        }
        for name, value in values.items():
            columns[name].append(value)
    features = Features({"query": Value("string"), "answer": Value("string"), **search_features()})
    return Dataset.from_dict(columns, features=features)


def write_synthetic_output(out: Path, n: int, seed: int = 0, report_rows: int | None = 200) -> dict:
    """A synthetic run's full output in ``out`` (dataset, parquet, summary, plot, report, card, Hub folder), written
    by ``save_outputs``; returns the seconds each part took and what the report's build wrote."""
    start = time.perf_counter()
    ds = synthetic_rows(n, seed)
    made = time.perf_counter() - start
    args = SynthesisScriptArguments(
        dataset_name="synthetic", dataset_pretty_name=f"Synthetic run ({n:,} rows, no model)", report_rows=report_rows
    )
    config = {
        k: v
        for c in (args, GeneratorConfig(), SearchConfig(), FilterConfig(), ScorerConfig())
        for k, v in dataclasses.asdict(c).items()
    }
    stats = Counter(generator_seconds=0.61 * n, scorer_seconds=0.27 * n, wall_seconds=0.93 * n)
    summary = {**summarize(ds, stats, 0.95 * n), "hub_config_name": "synthetic"}
    summary["noise_floor"] = {"max": MARGIN, "median": MARGIN / 3, "dtype": "bf16", "rows": 8}
    saved = time.perf_counter()
    save_outputs(ds, summary, config, args, Path(out))
    times = {"rows_seconds": round(made, 2), "save_outputs_seconds": round(time.perf_counter() - saved, 2)}
    # the report alone, as save_outputs builds it from the run's rows in memory
    return {**times, "in_run_report": write_report(ds, summary, config, Path(out) / REPORT_FILE, report_rows)}


def browser_seconds(page: Path) -> dict:
    """Seconds headless Chromium takes to load ``page`` and run its script (``--dump-dom``), and a blank page."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return {}
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        blank = Path(tmp) / "blank.html"
        blank.write_text("<!doctype html><title>blank</title>")
        for name, path in (("blank", blank), ("report", page)):
            start = time.perf_counter()
            cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}/{name}", "--dump-dom"]
            subprocess.run([*cmd, path.resolve().as_uri()], capture_output=True, timeout=300, check=True)
            times[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--report_rows", type=int, default=200)
    parser.add_argument("--output_dir", type=Path, default=Path(tempfile.gettempdir()) / "reer-synthetic-run")
    parser.add_argument("--browser", action="store_true", help="Also time headless Chromium loading the report.")
    args = parser.parse_args()
    if args.output_dir.exists():
        shutil.rmtree(args.output_dir)
    result = {"rows": args.rows, **write_synthetic_output(args.output_dir, args.rows, report_rows=args.report_rows)}
    result["rebuild"] = build_report(args.output_dir, args.report_rows)  # python -m reer_hf.synthesis.report
    result["parquet_bytes"] = (args.output_dir / "reer.parquet").stat().st_size
    if args.browser:
        result["chromium"] = browser_seconds(args.output_dir / "report.html")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
