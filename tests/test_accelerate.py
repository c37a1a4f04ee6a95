"""The accelerate configs parse with accelerate's own loader, and a ZeRO-3 launch of SFTTrainer trains a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "accelerate_configs"

NO_OFFLOAD = {"offload_optimizer_device": "none", "offload_param_device": "none"}
CPU_OFFLOAD = {"offload_optimizer_device": "cpu", "offload_param_device": "cpu"}
# File stem -> (distributed type, expected settings in its deepspeed_config / fsdp_config section).
EXPECTED = {
    "ddp": ("MULTI_GPU", {}),
    "zero2": ("DEEPSPEED", {"zero_stage": 2, "zero3_init_flag": False, **NO_OFFLOAD}),
    "zero3": ("DEEPSPEED", {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": True, **NO_OFFLOAD}),
    "zero3_offload": ("DEEPSPEED", {"zero_stage": 3, "zero3_init_flag": True, **CPU_OFFLOAD}),
    "fsdp2": ("FSDP", {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}),
}


def test_accelerate_configs_parse():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert {f.stem for f in files} == set(EXPECTED)
    for path in files:
        assert path.read_text().startswith("# "), f"{path.name}: first line should say what the config is for"
        config = load_config_from_file(str(path))
        distributed_type, settings = EXPECTED[path.stem]
        assert config.num_processes == 8 and config.num_machines == 1, path.name
        assert str(config.mixed_precision) == "bf16", path.name
        assert config.use_cpu is False, path.name
        assert config.distributed_type.value == distributed_type, path.name
        section = config.deepspeed_config if distributed_type == "DEEPSPEED" else config.fsdp_config
        for key, value in settings.items():
            assert section.get(key) == value, f"{path.name}: {key}={section.get(key)!r}, expected {value!r}"


@pytest.mark.slow
def test_zero3_launch_trains_tiny_model(tiny_llama_dir, tmp_path):
    """ZeRO-3 on CPU: one process, fp32; the first run JIT-builds DeepSpeed's shm comm op."""
    pytest.importorskip("deepspeed")
    accelerate = Path(sys.executable).with_name("accelerate")
    # Run from the repository root, as the README commands are; overrides only on the command line.
    launch = ["launch", "--config_file", "accelerate_configs/zero3.yaml"]
    overrides = ["--num_processes", "1", "--mixed_precision", "no"]
    script = ["tests/scripts/train_tiny.py", "--model_path", str(tiny_llama_dir), "--output_dir", str(tmp_path)]
    cmd = [str(accelerate), *launch, *overrides, *script, "--max_steps", "8"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["deepspeed_stage"] == 3
    assert result["engine_zero_stage"] == 3
    assert result["zero3_partitioned"] is True
    assert result["zero3_partitioned_at_load"] is True, "model was not built under zero.Init (pass it as a path)"
    losses = result["losses"]
    assert len(losses) == 8
    assert sum(losses[-3:]) / 3 < losses[0], losses
