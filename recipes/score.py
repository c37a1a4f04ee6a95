"""Score query/answer pairs (optionally with a thinking trajectory) with the REER perplexity scorer.

Usage (the bundled demo pairs with the built-in demo model, CPU):
    python recipes/score.py --config recipes/demo/score.yaml

Any dataset and scorer (the paper's: Qwen3-8B-Base on a GPU):
    python recipes/score.py --dataset_name my_pairs.jsonl --scorer_model Qwen/Qwen3-8B-Base --output_dir out/
"""

from __future__ import annotations

import json
import logging

from reer_hf.core.parser import RecipeParser
from reer_hf.scoring.config import ScorerConfig, ScoreScriptArguments
from reer_hf.scoring.dataset import score_dataset


def make_parser() -> RecipeParser:
    return RecipeParser((ScoreScriptArguments, ScorerConfig))


def main(script_args: ScoreScriptArguments, scorer_config: ScorerConfig) -> dict:
    summary = score_dataset(script_args, scorer_config)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(*make_parser().parse_args_and_config())
