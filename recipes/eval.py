"""Evaluate a model on LongBench-Write, HelloBench and WritingBench, in the paper's table (arXiv 2509.06160).

Usage (the demo: the built-in demo model on 10 LongBench-Write prompts, the length score only; CPU, about 4.5 minutes):
    python recipes/eval.py --config recipes/demo/eval.yaml

DeepWriter-8B with vLLM on one GPU, judged by a model behind any OpenAI-compatible endpoint (here on four others;
or a hosted API: --judge_base_url, OPENAI_API_KEY):
    CUDA_VISIBLE_DEVICES=0,1,2,3 vllm serve Qwen/Qwen2.5-72B-Instruct --tensor-parallel-size 4 --port 8001 &
    CUDA_VISIBLE_DEVICES=4 python recipes/eval.py --config recipes/DeepWriter-8B/evaluation/config_full.yaml

It runs as one process (not under accelerate launch); the vLLM engine takes the model over several GPUs with
generator_vllm_kwargs.tensor_parallel_size. On GPUs shared with the judge, run --stages generate first, then
--stages judge report.

Generations, judgements and scores go to --output_dir; an interrupted run continues where it stopped when started
again with the same settings. --compare_to other_run_dir adds a comparison (e.g. the full model against an ablation).
"""

from __future__ import annotations

import json
import logging

from reer_hf.core.parser import RecipeParser
from reer_hf.evaluation.config import EvaluationScriptArguments, JudgeConfig
from reer_hf.evaluation.run import evaluate
from reer_hf.generation.config import GeneratorConfig


def make_parser() -> RecipeParser:
    return RecipeParser((EvaluationScriptArguments, GeneratorConfig, JudgeConfig))


def main(args, gen_cfg, judge_cfg) -> dict:
    report = evaluate(args, gen_cfg, judge_cfg)
    print(json.dumps(report.get("table", report), indent=2, ensure_ascii=False))
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(*make_parser().parse_args_and_config())
