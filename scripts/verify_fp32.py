"""Check a synthesis run's improvements in fp32: every row it reports as improved is re-scored (z0 and z_star) with
the same scorer model in fp32, one plain forward per row; prints JSON and exits 1 if any improvement reverses.

    python scripts/verify_fp32.py --output_dir outputs/synthesis-demo --scorer_model builtin:smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datasets import load_from_disk

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.verify import plain_fp32_config, verify_improvements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="A recipes/synthesize.py output folder.")
    parser.add_argument("--scorer_model", default="builtin:smollm2-135m", help="The run's scorer model.")
    parser.add_argument("--scorer_max_length", type=int, default=None)
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    model = args.scorer_model
    if model is None:
        card_config = (
            json.loads((out / "hub" / "config.json").read_text()) if (out / "hub" / "config.json").exists() else {}
        )
        model = card_config.get("scorer_model", "builtin:smollm2-135m")
    config = ScorerConfig(scorer_model=model, scorer_device="cpu", scorer_max_length=args.scorer_max_length)
    scorer = Scorer.from_config(plain_fp32_config(config))
    report = verify_improvements(load_from_disk(str(out / "dataset")).to_list(), scorer)
    print(json.dumps(report, indent=2))
    return 1 if report["reversed"] else 0


if __name__ == "__main__":
    sys.exit(main())
