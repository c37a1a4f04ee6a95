"""Synthesize deep-thinking trajectories with the REER search (the paper's search and filters).

Usage (the demo: the built-in demo model as generator and scorer on the bundled pairs, CPU, ~3.5 minutes on 2 cores):
    python recipes/synthesize.py --config recipes/demo/synthesize.yaml

The paper's setting (a Qwen2.5-32B-Instruct generator served by `vllm serve`, a Qwen3-8B-Base scorer per GPU):
    vllm serve Qwen/Qwen2.5-32B-Instruct --tensor-parallel-size 4 --port 8000 &
    accelerate launch --num_processes 4 recipes/synthesize.py \
        --config recipes/DeepWriting-20K/synthesis/config_paper.yaml --dataset_name my_pairs.jsonl

Each process searches its share of the rows; the main process merges them in input order. An interrupted run resumes
at its first unfinished piece when started again with the same settings and --output_dir.

Generator failures never become data: a piece whose generator requests still fail after their retries (server
unreachable, timeout, 5xx, unparsable reply) is not written; the run goes on, then exits non-zero listing the missing
pieces, and the same command started again redoes exactly those, writing what a run without failures writes. An
outage (generator_outage_*) stops the run early with the endpoint, the model and the last error; the openai backend's
server is checked at the start (generator_health_check). A prompt too long for the model stays a per-row drop.
"""

from __future__ import annotations

import json
import logging

from reer_hf.core.parser import RecipeParser
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.runner import synthesize


def make_parser() -> RecipeParser:
    return RecipeParser((SynthesisScriptArguments, GeneratorConfig, SearchConfig, FilterConfig, ScorerConfig))


def main(args, gen_cfg, search_cfg, filter_cfg, scorer_cfg) -> dict | None:
    summary = synthesize(args, gen_cfg, search_cfg, filter_cfg, scorer_cfg)
    if summary is not None:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(*make_parser().parse_args_and_config())
