"""Train a tiny causal LM with TRL's SFTTrainer for a few steps, under whatever launcher runs it.

    accelerate launch --config_file accelerate_configs/zero3.yaml --num_processes 1 --mixed_precision no \
        tests/scripts/train_tiny.py --model_path <tiny model dir> --output_dir <dir> --max_steps 8

On the main process it writes ``<output_dir>/result.json``: the logged losses, the live DeepSpeed ZeRO stage (null
without DeepSpeed) and whether the parameters were ZeRO-3 partitioned at load time and after training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from reer_hf.core.data import demo_pairs

SYSTEM = "You are a helpful writer."


def chat_rows(query_chars: int = 120, answer_chars: int = 200) -> Dataset:
    """The bundled pairs as short system/user/assistant chats."""
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": pair["query"][:query_chars]},
                {"role": "assistant", "content": pair["answer"][:answer_chars]},
            ]
        }
        for pair in demo_pairs()
    ]
    return Dataset.from_list(rows)


def zero3_partitioned(model: torch.nn.Module) -> bool:
    """True when every parameter carries DeepSpeed ZeRO-3 partitioning metadata (``ds_id`` / ``ds_status``)."""
    params = list(model.parameters())
    return bool(params) and all(hasattr(p, "ds_id") and hasattr(p, "ds_status") for p in params)


def main(model_path: str, output_dir: str, max_steps: int) -> None:
    args = SFTConfig(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        bf16=False,
        use_cpu=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        max_length=256,
        assistant_only_loss=True,
        dataloader_pin_memory=False,
        disable_tqdm=True,
    )
    # A path string, so the model is built after the DeepSpeed config exists (ZeRO-3 ``zero.Init`` applies).
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=chat_rows())
    partitioned_at_load = zero3_partitioned(trainer.model)
    trainer.train()

    plugin = trainer.accelerator.state.deepspeed_plugin
    engine_stage = None
    if plugin is not None:
        import deepspeed

        if isinstance(trainer.model_wrapped, deepspeed.DeepSpeedEngine):
            engine_stage = trainer.model_wrapped.zero_optimization_stage()
    result = {
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
        "deepspeed_stage": plugin.zero_stage if plugin is not None else None,
        "engine_zero_stage": engine_stage,
        "zero3_partitioned_at_load": partitioned_at_load,
        "zero3_partitioned": zero3_partitioned(trainer.model),
        "num_processes": trainer.accelerator.num_processes,
    }
    if trainer.accelerator.is_main_process:
        Path(output_dir, "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_steps", type=int, default=8)
    cli = parser.parse_args()
    main(cli.model_path, cli.output_dir, cli.max_steps)
