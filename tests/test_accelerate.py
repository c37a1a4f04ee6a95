"""The accelerate configs parse with accelerate's own loader (a ZeRO-3 launch of the SFT recipe is in
tests/sft/test_sft_recipe.py)."""

from __future__ import annotations

from pathlib import Path

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
