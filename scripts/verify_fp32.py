"""Check a synthesis run's improvements in fp32: every row it reports as improved is re-scored (z0 and z_star) with
the run's own scorer options (its run_config.json) in fp32, one plain forward per row; prints JSON and exits 1 if any
improvement reverses.

    python scripts/verify_fp32.py --output_dir outputs/synthesis-demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from datasets import load_from_disk

from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.verify import plain_fp32_config, run_scorer_config, verify_improvements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="A recipes/synthesize.py output folder.")
    parser.add_argument(
        "--scorer_device", default=None, help="Device of the fp32 scorer (cpu, cuda, ...); default: the run's."
    )
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    config = run_scorer_config(out)
    if args.scorer_device:
        config = dataclasses.replace(config, scorer_device=args.scorer_device)
    scorer = Scorer.from_config(plain_fp32_config(config))
    report = verify_improvements(load_from_disk(str(out / "dataset")).to_list(), scorer)
    print(json.dumps(report, indent=2))
    return 1 if report["reversed"] else 0


if __name__ == "__main__":
    sys.exit(main())
