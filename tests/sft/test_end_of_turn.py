"""A model trained by the SFT recipes learns to stop: every example the trainer sees has the end-of-turn token
(``<|im_end|>``) as the last trained label of its assistant turn, padding and truncation included, for the demo and
the paper recipes' tokenizer set-ups; the recipe drops (or, asked to, keeps and counts) the conversations
``max_length`` would cut before it; and greedy generation from a tiny model trained a few steps by the recipe ends
its turn (``scripts/check_stops.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from sft_rows import deepwriting_rows, openthoughts_rows, synthesis_rows
from testing_utils import REPO_ROOT, build_layout_tokenizer, build_tiny_model, write_jsonl

from reer_hf.sft.config import sft_parser
from reer_hf.sft.end_of_turn import Truncation, end_of_turn_step
from reer_hf.sft.report import SFTDataReport
from reer_hf.sft.stops import check_stops
from reer_hf.sft.train import make_trainer, prepare_data, run_sft

RECIPES = REPO_ROOT / "recipes"
#: recipe -> its YAML, the tokenizer layout of its base model, the data shape it reads, the tiny architecture.
SETUPS = {
    "demo": (RECIPES / "demo" / "sft.yaml", "smollm2", synthesis_rows, "llama"),
    "paper": (RECIPES / "DeepWriter-8B" / "sft" / "config_full.yaml", "qwen3", deepwriting_rows, "qwen3"),
}
#: The tiny conversations are 280-790 tokens long: this cuts some before their end of turn and keeps others whole.
MAX_LENGTH = 520
EOT = "<|im_end|>"


@pytest.fixture(scope="module", params=sorted(SETUPS))
def setup(request, tmp_path_factory) -> dict:
    """A tiny model saved with the layout's tokenizer, the recipe's data shape and a public mix, as local files."""
    recipe, layout, rows, arch = SETUPS[request.param]
    tmp = tmp_path_factory.mktemp(f"eot-{request.param}")
    tokenizer = build_layout_tokenizer(layout)
    build_tiny_model(arch, len(tokenizer)).save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    return {
        "recipe": recipe,
        "model": tmp / "model",
        "data": write_jsonl(tmp / "data.jsonl", rows()),
        "public": write_jsonl(tmp / "public.jsonl", openthoughts_rows()),
        "tmp": tmp,
    }


def recipe_args(setup: dict, *extra: str):
    """The recipe's options as ``recipes/sft.py`` parses them, on the tiny model and local data."""
    cli = ["--config", str(setup["recipe"]), "--model_name_or_path", str(setup["model"])]
    cli += ["--dataset_name", str(setup["data"]), "--mix_dataset_name", str(setup["public"]), "--mix_count", "3"]
    cli += ["--output_dir", str(setup["tmp"] / "out"), "--max_length", str(MAX_LENGTH), "--reer_data_cache", "false"]
    cli += ["--per_device_train_batch_size", "4", "--use_cpu", "true", "--bf16", "false", "--report_to", "none"]
    script_args, training_args, model_args = sft_parser().parse_args_and_config([*cli, *extra])
    training_args.dataset_num_proc = None  # the paper recipe's 8 processes: one is enough for a few rows
    return script_args, training_args, model_args


def trained_ends(setup: dict, *extra: str) -> tuple[list[int], SFTDataReport, int, bool]:
    """The last trained label of every example, as the trainer's own data loader batches them (TRL's tokenization,
    truncation and collator); the report; the end-of-turn id; whether some batch was padded."""
    args = recipe_args(setup, *extra)
    model_path, tokenizer, dataset, report = prepare_data(*args)
    trainer = make_trainer(*args, model_path, tokenizer, dataset, report)
    eot = trainer.processing_class.convert_tokens_to_ids(EOT)
    assert trainer.processing_class.eos_token == EOT  # the recipe's eos_token, whatever the base model's
    ends, padded = [], False
    for batch in trainer.get_train_dataloader():
        padded |= bool((batch["attention_mask"] == 0).any())
        for labels in batch["labels"]:
            trained = (labels != -100).nonzero().flatten().tolist()
            assert trained, "an example without a trained token"
            assert (labels[trained[-1] + 1 :] == -100).all()
            ends.append(int(labels[trained[-1]]))
    assert len(ends) == len(trainer.train_dataset) == len(dataset)
    return ends, report, eot, padded


def test_every_example_the_trainer_sees_trains_its_end_of_turn(setup):
    ends, report, eot, padded = trained_ends(setup)
    assert padded, "no batch was padded: the check would not cover padding"
    assert set(ends) == {eot}
    eot_report = report.end_of_turn
    assert eot_report["token"] == EOT and eot_report["max_length"] == MAX_LENGTH and eot_report["action"] == "drop"
    step = report.steps[-1]
    assert step["step"] == f"end of turn within max_length={MAX_LENGTH}"
    assert 0 < eot_report["cut"] < step["before"] and step["after"] == step["before"] - eot_report["cut"]


def test_kept_over_length_examples_are_exactly_the_ones_trl_truncates_before_their_end_of_turn(setup):
    ends, report, eot, _ = trained_ends(setup, "--reer_over_max_length", "keep")
    assert report.end_of_turn["cut"] > 0 and report.steps[-1]["after"] == report.steps[-1]["before"]
    assert sum(e != eot for e in ends) == report.end_of_turn["cut"]


def test_a_template_that_does_not_train_the_end_of_turn_is_refused(tmp_path):
    from datasets import Dataset

    tokenizer = build_layout_tokenizer("qwen3")  # ends its turn with <|im_end|>, whose eos is <|endoftext|>
    ds = Dataset.from_list([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}])
    with pytest.raises(ValueError, match=r"do not end the conversation with the end-of-turn token '<\|endoftext\|>'"):
        end_of_turn_step(ds, tokenizer, Truncation(64, assistant_only_loss=False), "drop", SFTDataReport())


def test_truncation_follows_the_trainer_config():
    from trl import SFTConfig

    def of(**kwargs) -> Truncation:
        return Truncation.of(SFTConfig(output_dir="unused", use_cpu=True, report_to="none", **kwargs))

    assert of(max_length=8).kept(10) == range(8) and of(max_length=8, truncation_mode="keep_end").kept(10) == range(
        2, 10
    )
    assert of(max_length=8, packing=True).kept(10) == range(8)  # bfd truncates the overflow
    assert of(max_length=8, packing=True, packing_strategy="bfd_split").kept(10) == range(10)
    assert of(max_length=None, padding_free=True).kept(10) == range(10)


@pytest.mark.slow
def test_a_tiny_model_trained_by_the_recipe_stops_and_check_stops_says_so(tmp_path, tiny_tokenizer):
    """The demo recipe trains a tiny model for a few steps on short conversations; greedy generation then ends most
    training prompts with <|im_end|> within the budget, where the untrained model ends none."""
    model = tmp_path / "model"
    build_tiny_model("llama", len(tiny_tokenizer)).save_pretrained(model)
    tiny_tokenizer.save_pretrained(model)
    rows = [
        {"query": f"Write line {i}.", "answer": f"Line {i} is here.", "z_star": f"Plan {i}.", "status": "ok"}
        for i in range(4)
    ]
    data = write_jsonl(tmp_path / "syn.jsonl", rows)
    recipe = ["--config", str(RECIPES / "demo" / "sft.yaml"), "--dataset_name", str(data)]
    cli = [sys.executable, str(REPO_ROOT / "scripts" / "check_stops.py"), *recipe, "--reer_data_cache", "false"]

    before = check_stops([*recipe, "--reer_data_cache", "false"], str(model))  # in process: what the script calls
    assert before["prompts"] == 4 and before["end_of_turn"] == EOT and before["share"] <= 0.25, before

    out = tmp_path / "out"
    train = [*recipe, "--model_name_or_path", str(model), "--output_dir", str(out), "--reer_data_cache", "false"]
    train += ["--max_steps", "40", "--learning_rate", "3e-3", "--per_device_train_batch_size", "4"]
    train += ["--gradient_accumulation_steps", "1", "--logging_steps", "10"]
    run_sft(*sft_parser().parse_args_and_config(train))
    proc = subprocess.run([*cli, "--model_dir", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads(proc.stdout)
    assert after["share"] >= 0.75 and after["stopped"] >= 3, after
    assert after["max_new_tokens"] == before["max_new_tokens"]
    shutil.rmtree(out)
