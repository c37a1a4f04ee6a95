"""``recipes/sft.py`` end to end: the dry run, real training steps on a tiny model (parameters change, the card is
written, an interrupted run resumes), the CLI (full, LoRA, DeepSpeed ZeRO-3 on CPU) and the demo on a GPU."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sft_rows import deepwriting_rows, openthoughts_rows, synthesis_rows
from testing_utils import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
DEMO_RECIPE = RECIPES / "demo" / "sft.yaml"


def load_recipe_module():
    spec = importlib.util.spec_from_file_location("recipe_sft", RECIPES / "sft.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse(cli: list[str]):
    return load_recipe_module().make_parser().parse_args_and_config(["--config", str(DEMO_RECIPE), *cli])


def tiny_cli(model_dir: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        "--learning_rate",
        "1e-3",
        "--max_length",
        "1024",  # every tiny conversation fits (under 800 tokens): none is dropped for its end of turn
        "--reer_data_cache_dir",
        str(out.parent / "data-cache"),
        *extra,
    ]


def saved_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def run_cli(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def test_dry_run_prints_the_report_and_loads_no_model(tiny_tokenizer, tmp_path, capsys, monkeypatch):
    model_dir = tmp_path / "tokenizer-only"  # the dry run reads the tokenizer; a folder without weights proves it
    tiny_tokenizer.save_pretrained(model_dir)
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    out = tmp_path / "out"
    cli = tiny_cli(model_dir, data, out, "--mix_dataset_name", str(public), "--mix_count", "3")
    script_args, training_args, model_args = parse([*cli, "--ablation_no_reflection", "--dry_run"])

    def no_model(*args, **kwargs):
        raise AssertionError("the dry run loaded a model")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", no_model)
    report = load_recipe_module().main(script_args, training_args, model_args)
    printed = capsys.readouterr().out
    assert "rows per step:" in printed and "ablation_no_reflection" in printed
    assert re.search(r"public rows\s+13 ->\s+3\s+seeded sample of 3 \(seed 42\)", printed)
    assert re.search(r"mix\s+10 ->\s+10\s+7 REER \+ 3 public", printed)
    assert "      tokens | thinking | conversation |" in printed
    assert "sample (row 0):" in printed and "--- assistant ---" in printed
    assert "conversations whose end-of-turn token <|im_end|> max_length=1024 (keep_start) would cut: 0" in printed
    assert report["mix"]["public"] == 3 and not out.exists()


@pytest.mark.slow
def test_two_steps_change_every_parameter_save_the_card_and_resume(tiny_llama_dir, tmp_path, caplog):
    data = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    out = tmp_path / "out"
    recipe = load_recipe_module()
    cli = tiny_cli(tiny_llama_dir, data, out, "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1")
    script_args, training_args, model_args = parse(cli)
    script_args.reer_recipe_path = str(DEMO_RECIPE)
    metrics = recipe.main(script_args, training_args, model_args)
    assert metrics["train_samples"] == 8

    before, after = saved_state(tiny_llama_dir), saved_state(out)
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert not unchanged, f"parameters not updated by two steps: {unchanged}"
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)

    card = (out / "README.md").read_text()
    assert DEMO_RECIPE.read_text().strip() in card  # the recipe, verbatim
    assert "| trajectories | 9 | 8 |" in card and "train_loss" in card and "- trl: " in card
    assert "This combination is not a run of the paper." in card  # REER data only: no paper numbers
    assert json.loads((out / "sft_data_report.json").read_text())["shape"] == "prompt_solution"
    saved_template = (out / "chat_template.jinja").read_text()
    assert "{% generation %}" in saved_template or "{%- generation %}" in saved_template

    # Started again with a higher max_steps (and another learning rate, so that a fresh start would log another
    # step-2 loss), the run resumes from checkpoint-2: the first two logged losses are the first run's, read back from
    # the checkpoint, and only step 3 is trained.
    assert (out / "checkpoint-2").is_dir()
    again = [*cli[:-6], "--max_steps", "3", "--save_strategy", "no", "--learning_rate", "3e-4"]
    with caplog.at_level(logging.INFO, logger="reer_hf.sft.train"):
        metrics = recipe.main(*parse(again))
    assert f"Resuming from {out / 'checkpoint-2'}" in caplog.text
    resumed = json.loads((out / "trainer_state.json").read_text())
    assert resumed["global_step"] == 3
    assert [e["loss"] for e in resumed["log_history"] if "loss" in e][:2] == losses


# ----------------------------------------------------------------------------------------------------------------
# CLI smoke: full, LoRA, and DeepSpeed ZeRO-3 under accelerate launch on CPU


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["full", "lora"])
def test_sft_cli_on_a_tiny_model(variant, tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    out = tmp_path / "out"
    lora = ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "all-linear"]
    cli = tiny_cli(
        tiny_llama_dir, data, out, "--max_steps", "2", "--mix_dataset_name", str(public), "--mix_count", "4"
    )
    run_cli(
        [sys.executable, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli, *(lora if variant == "lora" else [])]
    )
    weights = "adapter_model.safetensors" if variant == "lora" else "model.safetensors"
    assert (out / weights).is_file()
    card = (out / "README.md").read_text()
    assert DEMO_RECIPE.read_text().strip() in card and "single process" in card
    assert "| HelloBench B | 87.48 |" in card  # the full run: the paper's DeepWriter-8B row
    assert ("lora" in card.split("---")[1]) == (variant == "lora")  # the card's metadata tags
    report = json.loads((out / "sft_data_report.json").read_text())
    assert report["mix"] == {"reer": 7, "public": 4, "public_wanted": 4, "public_share": 0.3636}


@pytest.mark.slow
def test_sft_cli_under_accelerate_zero3_on_cpu(tiny_llama_dir, tmp_path):
    """One process, fp32, use_cpu false: DeepSpeed ZeRO on CPU runs only without mixed precision and with the
    accelerator left to DeepSpeed's CPU backend."""
    pytest.importorskip("deepspeed")
    data = write_jsonl(tmp_path / "dw.jsonl", deepwriting_rows())
    out = tmp_path / "out"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--config_file", "accelerate_configs/zero3.yaml"]
    overrides = ["--num_processes", "1", "--mixed_precision", "no"]
    cli = tiny_cli(tiny_llama_dir, data, out, "--max_steps", "2", "--use_cpu", "false")
    proc = run_cli([*launch, *overrides, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli])
    # the model was built under zero.Init (passed to the trainer as a path), and the ZeRO-3 engine trained it
    assert "ZeRO-3: the model was partitioned at load" in proc.stdout + proc.stderr
    assert (out / "model.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "DeepSpeed ZeRO-3 on 1 x " in card  # cpu here, cuda where a GPU is visible
    trained = saved_state(out)
    assert any(not torch.equal(trained[k], v) for k, v in saved_state(tiny_llama_dir).items())
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


# ----------------------------------------------------------------------------------------------------------------
# GPU: the demo SFT, 20 steps in bf16 under the ZeRO-3 config


def demo_data(tmp_path: Path) -> Path:
    """The search demo's output when it is there, else rows of the same shape built from the bundled pairs."""
    real = ROOT / "outputs" / "synthesis-demo" / "reer.parquet"
    if real.is_file():
        return real
    return write_jsonl(tmp_path / "demo.jsonl", synthesis_rows())


@pytest.mark.gpu
@pytest.mark.slow
def test_demo_sft_zero3_bf16_on_gpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("deepspeed")
    model = os.environ.get("REER_SFT_GPU_MODEL", "builtin:smollm2-135m")  # a local copy where the Hub is unreachable
    out = tmp_path / "out"
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--config_file", "accelerate_configs/zero3.yaml", "--num_processes", "1"]
    cli = ["--model_name_or_path", model, "--dataset_name", str(demo_data(tmp_path)), "--output_dir", str(out)]
    gpu = ["--use_cpu", "false", "--bf16", "true", "--dtype", "bfloat16", "--max_steps", "20"]
    run_cli([*launch, "recipes/sft.py", "--config", str(DEMO_RECIPE), *cli, *gpu], timeout=900)
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == 20 and len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses
    card = (out / "README.md").read_text()
    assert "DeepSpeed ZeRO-3 on 1 x cuda, mixed precision bf16" in card
    assert (out / "model.safetensors").is_file()


# ----------------------------------------------------------------------------------------------------------------
# The paper recipes' logging (TensorBoard events, per-process log levels) and the fast variant's dry run

PAPER_SFT = RECIPES / "DeepWriter-8B" / "sft"


def paper_cli(recipe: Path, model_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    """A paper recipe on local files and a tiny model, on this CPU machine (fp32, one data process)."""
    data = write_jsonl(tmp_path / "syn.jsonl", synthesis_rows())
    public = write_jsonl(tmp_path / "ot.jsonl", openthoughts_rows())
    return [
        "--config",
        str(recipe),
        "--model_name_or_path",
        str(model_dir),
        "--dataset_name",
        str(data),
        "--mix_dataset_name",
        str(public),
        "--mix_count",
        "3",
        "--output_dir",
        str(tmp_path / "out"),
        "--reer_data_cache_dir",
        str(tmp_path / "data-cache"),
        "--use_cpu",
        "true",
        "--bf16",
        "false",
        "--dtype",
        "float32",
        "--dataset_num_proc",
        "1",
        *extra,
    ]


@pytest.mark.parametrize("recipe", sorted(PAPER_SFT.glob("config_*.yaml")), ids=lambda p: p.stem)
def test_paper_recipes_log_to_tensorboard_and_wait_for_the_data(recipe):
    script_args, training_args, model_args = (
        load_recipe_module().make_parser().parse_args_and_config(["--config", str(recipe), "--use_cpu", "true"])
    )
    assert training_args.report_to == ["tensorboard"]
    assert (training_args.log_level, training_args.log_level_replica) == ("info", "warning")
    assert training_args.ddp_timeout == 3600


@pytest.fixture
def restore_log_levels():
    import datasets
    import transformers

    names = ("__main__", "reer_hf", "trl")
    saved = [logging.getLogger(n).level for n in names]
    verbosity = transformers.utils.logging.get_verbosity(), datasets.utils.logging.get_verbosity()
    yield
    for name, level in zip(names, saved, strict=True):
        logging.getLogger(name).setLevel(level)
    transformers.utils.logging.set_verbosity(verbosity[0])
    datasets.utils.logging.set_verbosity(verbosity[1])


@pytest.mark.parametrize(("main_process", "expected"), [(True, logging.INFO), (False, logging.WARNING)])
def test_logging_is_info_on_the_main_process_and_warnings_elsewhere(
    main_process, expected, monkeypatch, restore_log_levels
):
    import datasets
    import transformers

    recipe = load_recipe_module()
    _, training_args, _ = recipe.make_parser().parse_args_and_config(
        ["--config", str(PAPER_SFT / "config_full.yaml"), "--use_cpu", "true"]
    )
    monkeypatch.setattr(type(training_args), "should_log", property(lambda self: main_process))
    assert recipe.setup_logging(training_args) == expected
    assert logging.getLogger("reer_hf").level == logging.getLogger("trl").level == expected
    assert transformers.utils.logging.get_verbosity() == datasets.utils.logging.get_verbosity() == expected


def test_fast_recipe_dry_run_on_cpu(tiny_tokenizer, tmp_path, capsys, monkeypatch):
    """config_full_fast.yaml (flash attention, Liger, padding-free) builds and reports its data on a machine
    without a GPU; only the model and the kernels need one."""
    model_dir = tmp_path / "tokenizer-only"
    tiny_tokenizer.save_pretrained(model_dir)
    recipe = load_recipe_module()
    cli = paper_cli(PAPER_SFT / "config_full_fast.yaml", model_dir, tmp_path, "--dry_run")
    script_args, training_args, model_args = recipe.make_parser().parse_args_and_config(cli)
    assert training_args.padding_free and training_args.use_liger_kernel and training_args.max_length is None
    assert model_args.attn_implementation == "flash_attention_2"

    def no_model(*args, **kwargs):
        raise AssertionError("the dry run loaded a model")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", no_model)
    report = recipe.main(script_args, training_args, model_args)
    printed = capsys.readouterr().out
    assert "rows per step:" in printed and "sample (row 0):" in printed
    assert report["mix"]["public"] == 3 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_paper_recipe_writes_tensorboard_events(tiny_llama_dir, tmp_path, monkeypatch):
    """config_full.yaml's report_to on two real steps of a tiny model: an events file under <output_dir>/runs
    holding the training loss of each step."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    recipe = load_recipe_module()
    extra = ["--max_steps", "2", "--logging_steps", "1", "--gradient_checkpointing", "false", "--max_length", "1024"]
    cli = paper_cli(PAPER_SFT / "config_full.yaml", tiny_llama_dir, tmp_path, *extra)
    recipe.main(*recipe.make_parser().parse_args_and_config(cli))
    events = sorted((tmp_path / "out" / "runs").glob("*/events.out.tfevents.*"))
    assert len(events) == 1, events
    accumulator = EventAccumulator(str(events[0].parent)).Reload()
    losses = accumulator.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2] and all(e.value > 0 for e in losses)


def test_zero3_partition_check_says_when_every_rank_built_the_whole_model(caplog):
    from types import SimpleNamespace

    from reer_hf.sft.train import check_zero3_partitioned

    model = torch.nn.Linear(4, 4)
    assert check_zero3_partitioned(model, None) is None
    assert check_zero3_partitioned(model, SimpleNamespace(zero_stage=2)) is None
    with caplog.at_level(logging.WARNING, logger="reer_hf"):
        assert check_zero3_partitioned(model, SimpleNamespace(zero_stage=3)) is False
    assert "not partitioned at load" in caplog.text and "zero3_init_flag" in caplog.text
    for i, param in enumerate(model.parameters()):  # what zero.Init leaves on every parameter
        param.ds_id, param.ds_status = i, "NOT_AVAILABLE"
    assert check_zero3_partitioned(model, SimpleNamespace(zero_stage=3)) is True
