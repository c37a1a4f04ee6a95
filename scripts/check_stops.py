"""Does the model an SFT recipe trained stop? Greedy generation on the recipe's training prompts; prints JSON with the
share that ends its turn with the end-of-turn token (<|im_end|> in the recipes) within the token budget.

    python scripts/check_stops.py --config recipes/demo/sft.yaml               # the model in the recipe's output_dir
    python scripts/check_stops.py --config recipes/demo/sft.yaml --max_new_tokens 1024 --output stops.json

Options after the script's own are the recipe's (e.g. --dataset_name, as the training run was given them). The logic is
reer_hf.sft.stops.check_stops.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reer_hf.sft.stops import check_stops


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model_dir", default=None, help="The trained model; default: the recipe's output_dir.")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="Budget; default 1.5 x the longest turn.")
    parser.add_argument("--max_prompts", type=int, default=None, help="First N training prompts only.")
    parser.add_argument("--dtype", default="auto", help="auto, bf16 or fp32.")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, ...")
    parser.add_argument("--batch_size", type=int, default=8, help="Prompts per generate call.")
    parser.add_argument("--output", type=Path, default=None, help="Also write the JSON here.")
    args, recipe_args = parser.parse_known_args(argv)
    if "--config" not in recipe_args:
        parser.error("pass the recipe the model was trained with: --config recipes/demo/sft.yaml")
    result = check_stops(
        recipe_args,
        args.model_dir,
        max_new_tokens=args.max_new_tokens,
        max_prompts=args.max_prompts,
        dtype=args.dtype,
        device=args.device,
        batch_size=args.batch_size,
    )
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
