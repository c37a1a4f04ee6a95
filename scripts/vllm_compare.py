"""Check every score a synthesis run stored against the in-process fp32 transformers scorer: each row's ``z0``
(``initial_score``) and ``z_star`` (``final_score``) are re-scored with the run's own scorer options (its
run_config.json) in fp32, one plain forward per row, whatever backend the run scored with (a vLLM server, the vLLM
engine, transformers). Prints one JSON line with the largest difference and the run's speed (from its summary.json);
exits 1 when a difference exceeds --tolerance or a stored score cannot be re-scored. Part of `make vllm-check`.

    python scripts/vllm_compare.py --output_dir outputs/vllm-check/completions
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import pyarrow.parquet as pq

from reer_hf.scoring.scorer import STATUS_OK, Scorer
from reer_hf.synthesis.verify import plain_fp32_config, run_scorer_config


def per_second(tokens, seconds) -> float | None:
    return round(tokens / seconds, 1) if tokens and seconds else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="A recipes/synthesize.py output folder.")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="Largest accepted score difference.")
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    # The reference runs here, on the CPU, whatever device the run had
    config = dataclasses.replace(plain_fp32_config(run_scorer_config(out)), scorer_device="cpu")
    scorer = Scorer.from_config(config)
    rows = pq.read_table(out / "reer.parquet").to_pylist()

    # (row, which, stored score, text): every stored score; an unchanged z_star is the same text, scored once
    stored = []
    for i, row in enumerate(rows):
        for which, key, text in (("z0", "initial_score", row["z0"]), ("z_star", "final_score", row["z_star"])):
            if row.get(key) is not None and not math.isnan(row[key]):
                stored.append((i, which, row[key], text))
    texts = sorted({(rows[i]["query"], text, rows[i]["answer"]) for i, _, _, text in stored})
    results = dict(zip(texts, scorer.score(*map(list, zip(*texts, strict=True))), strict=True)) if texts else {}

    worst, failed = None, []
    for i, which, score, text in stored:
        result = results[(rows[i]["query"], text, rows[i]["answer"])]
        if result.status != STATUS_OK:
            failed.append({"row": i, "score": which, "status": result.status})
            continue
        diff = abs(score - result.score)
        if worst is None or diff > worst["diff"]:
            worst = {"diff": diff, "row": i, "score": which, "stored": score, "fp32": result.score}

    summary = json.loads((out / "summary.json").read_text())
    max_diff = worst["diff"] if worst else None
    report = {
        "output_dir": str(out),
        "scorer_backend": run_scorer_config(out).scorer_backend,
        "rows": len(rows),
        "scores_compared": len(stored) - len(failed),
        "rescoring_failed": failed,
        "max_score_diff": max_diff,
        "worst": worst,
        "tolerance": args.tolerance,
        "ok": not failed and (max_diff is None or max_diff <= args.tolerance),
        "generator_tokens_per_s": per_second(summary.get("generated_tokens"), summary.get("generator_seconds")),
        "scorer_tokens_per_s": per_second(summary.get("scored_tokens"), summary.get("scorer_seconds")),
        "generated_tokens": summary.get("generated_tokens"),
        "generator_errors": summary.get("generator_errors"),
        "search_seconds": summary.get("search_seconds"),
        "wall_seconds": summary.get("wall_seconds"),
        "status": summary.get("status"),
    }
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
