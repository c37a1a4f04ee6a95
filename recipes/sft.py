"""DeepWriter SFT on REER trajectories (the paper's training setup and ablations, arXiv 2509.06160), every
ablation a flag.

The demo (the built-in demo model on the demo search output, CPU, a few minutes; run the search demo first):
    python recipes/synthesize.py --config recipes/demo/synthesize.yaml
    python recipes/sft.py --config recipes/demo/sft.yaml

The paper's run (Qwen3-8B-Base, 1 node of 8 x 80 GB GPUs, DeepSpeed ZeRO-3):
    accelerate launch --config_file accelerate_configs/zero3.yaml recipes/sft.py \
        --config recipes/DeepWriter-8B/sft/config_full.yaml

The same run faster (flash attention, Liger kernels, padding-free batches; the same data and global batch): the
command above with --config recipes/DeepWriter-8B/sft/config_full_fast.yaml. On N nodes of 8 GPUs under Slurm, the
global batch kept at 96: sbatch --nodes=N slurm/sft.slurm <recipe YAML>.

Any recipe with --dry_run prints the rows kept by each data step, a length histogram and one sample, and exits before
loading the model. An interrupted run resumes from the last checkpoint in output_dir when started again. After
training, python scripts/check_stops.py --config <recipe YAML> reports the share of the training prompts the model
ends with its end-of-turn token.
"""

from __future__ import annotations

import logging
import sys

from trl import ModelConfig, SFTConfig, TrlParser

from reer_hf.sft.config import SFTScriptArguments, sft_parser
from reer_hf.sft.train import recipe_path_from_argv, run_sft, setup_logging

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    return sft_parser()


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> dict:
    return run_sft(script_args, training_args, model_args)


if __name__ == "__main__":
    script_args, training_args, model_args = make_parser().parse_args_and_config()
    setup_logging(training_args)
    logger.info("Process %d of %d", training_args.process_index, training_args.world_size)
    script_args.reer_recipe_path = script_args.reer_recipe_path or recipe_path_from_argv(sys.argv[1:])
    main(script_args, training_args, model_args)
