"""The trainer wiring of the SFT recipe: the label mask of the chat templates we ship through TRL's own
preprocessing, the paper run a configuration reproduces, and the model card built from the paper's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sft_rows import file_dataset

from reer_hf.core.cards import render_model_card
from reer_hf.core.formats import ASSISTANT_FORMAT, format_assistant, to_messages
from reer_hf.core.models import TEMPLATES_DIR
from reer_hf.core.paper import COLUMN_NAMES, PAPER_ABLATIONS, PAPER_TABLE
from reer_hf.sft.config import SFTScriptArguments
from reer_hf.sft.train import framework_versions, paper_run, run_name

ROOT = Path(__file__).resolve().parents[2]
CHATML = TEMPLATES_DIR / "chatml.jinja"

# ----------------------------------------------------------------------------------------------------------------
# Label mask of the chat templates we ship, through TRL's own preprocessing


def sft_config(output_dir: Path, **kwargs):
    from trl import SFTConfig

    defaults = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        report_to="none",
        assistant_only_loss=True,
        max_length=None,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    return SFTConfig(**{**defaults, **kwargs})


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_label_mask_trains_the_assistant_turn_only(which, tiny_llama_dir, tmp_path, request):
    """System and user tokens are -100; the <think> span, the answer and the end-of-turn token are trained."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    if which == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)  # its own ChatML template with generation markers
        template = None
    else:  # the demo model's tokenizer, with reer_hf/templates/chatml.jinja applied by TRL as the recipes do
        tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue("demo_model_dir"))
        tokenizer.chat_template = None
        template = str(CHATML)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # preprocessing never runs it
    assistant = format_assistant(ASSISTANT_FORMAT, "The reader is young.", "A short story.")
    messages = to_messages(
        "Write a story.",
        "The reader is young.",
        "A short story.",
        "You are a helpful writer.",
        ASSISTANT_FORMAT,
    )
    args = sft_config(tmp_path, chat_template_path=template, eos_token="<|im_end|>")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=file_dataset(tmp_path, "chat", [{"messages": messages}]),
        processing_class=tokenizer,
    )
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    assert trained == list(range(trained[0], trained[-1] + 1)), "one contiguous trained span"
    assert [labels[i] for i in trained] == [ids[i] for i in trained]
    decode = trainer.processing_class.decode
    assert decode([ids[i] for i in trained]) == assistant + "<|im_end|>"
    prefix = decode(ids[: trained[0]])
    assert prefix.endswith("<|im_start|>assistant\n") and "You are a helpful writer." in prefix
    assert "Write a story." in prefix
    assert ids[trained[-1]] == trainer.processing_class.convert_tokens_to_ids("<|im_end|>")
    assert all(label == -100 for label in labels[trained[-1] + 1 :])  # the newline after the turn


# ----------------------------------------------------------------------------------------------------------------
# The paper run and the model card


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mix_dataset_name": "ot"}, "full"),
        ({}, "REER data only"),
        ({"mix_dataset_name": "ot", "ablation_no_synthetic": True}, "no synthetic data"),
        ({"ablation_no_search": True}, "no iterative search"),
        ({"ablation_no_reflection": True}, "no reflection tokens"),
        ({"ablation_length": "fewer_long"}, "fewer long trajectories"),
        ({"ablation_length": "fewer_short"}, "fewer short trajectories"),
        ({"ablation_exclude_categories": ["Artistic"]}, "excluded categories"),
        ({"ablation_no_search": True, "ablation_no_reflection": True}, "combined ablations"),
    ],
)
def test_run_name_matches_the_paper_runs(kwargs, name):
    assert run_name(SFTScriptArguments(**kwargs)) == name
    assert name in PAPER_ABLATIONS or name in ("REER data only", "combined ablations")


def test_paper_run_names_the_benchmarks_in_full():
    full = paper_run("full")
    assert full["change"] == PAPER_ABLATIONS["full"]["change"] and "note" not in full
    assert full["scores"] == {COLUMN_NAMES[code]: score for code, score in PAPER_TABLE["DeepWriter-8B"].items()}
    assert full["scores"]["HelloBench B"] == 87.48 and list(full["scores"])[0] == "LongBench-Write"
    assert paper_run("no iterative search")["scores"] == {
        "HelloBench B": 84.4,
        "WritingBench A": 66.7,
        "WritingBench D": 65.6,
    }
    excluded = paper_run("excluded categories")
    assert excluded["scores"] == {} and excluded["note"].startswith("The paper reports no numbers")
    assert paper_run("combined ablations") == {}


def test_model_card_renders_with_the_recipe():
    recipe = (ROOT / "recipes" / "DeepWriter-8B" / "sft" / "config_no_search.yaml").read_text()
    card = render_model_card(
        base_model="Qwen/Qwen3-8B-Base",
        run={"name": "no iterative search", "lora": False, **paper_run("no iterative search")},
        data={
            "dataset_name": "outputs/DeepWriting-20K/synthesis/reer.parquet",
            "mix_dataset_name": "open-thoughts/OpenThoughts-114k",
            "report": {"shape": "synthesis", "steps": [{"step": "mix", "before": 1, "after": 1, "detail": "a|b"}]},
            "assistant_format": ASSISTANT_FORMAT,
            "system_prompt": "You are a helpful assistant.",
        },
        hyperparameters={"learning_rate": 2e-5, "global_batch_size": 96},
        versions=framework_versions(),
        metrics={"train_loss": 1.23},
        log_history=[{"step": s, "epoch": s / 10, "loss": 2.0 - s / 100, "learning_rate": 2e-5} for s in range(1, 51)],
        recipe_yaml=recipe,
        recipe_path="recipes/DeepWriter-8B/sft/config_no_search.yaml",
        command="recipes/sft.py --config recipes/DeepWriter-8B/sft/config_no_search.yaml",
        repo_id="me/DeepWriter-8B-no-search",
    )
    text = str(card)
    assert recipe.strip() in text
    assert card.data.base_model == "Qwen/Qwen3-8B-Base"
    assert card.data.datasets == ["open-thoughts/OpenThoughts-114k"]  # a local path is no Hub dataset
    assert "| HelloBench B | 84.4 |" in text and "| WritingBench D | 65.6 |" in text
    assert "Run:** no iterative search: train on z0 instead of z*" in text
    assert "- transformers: " in text and "- trl: " in text and "@inproceedings{reer2026" in text
    assert "## Intended use and limits" in text and 'model_id = "me/DeepWriter-8B-no-search"' in text
    assert "| mix | 1 | 1 | a/b |" in text
    loss_rows = [line for line in text.splitlines() if re.match(r"\| \d+ \| [\d.]+ \| [\d.]+ \|", line)]
    assert 10 <= len(loss_rows) <= 21 and loss_rows[-1].startswith("| 50 |")


def test_model_card_of_a_run_without_paper_numbers_says_so():
    common = {
        "base_model": "Qwen/Qwen3-8B-Base",
        "data": {"report": {"shape": "synthesis", "steps": []}, "assistant_format": ASSISTANT_FORMAT},
        "hyperparameters": {},
        "versions": {},
    }
    excluded = str(
        render_model_card(run={"name": "excluded categories", **paper_run("excluded categories")}, **common)
    )
    assert "The paper reports no numbers: removing the creative domain lowers every benchmark." in excluded
    combined = str(render_model_card(run={"name": "combined ablations", **paper_run("combined ablations")}, **common))
    assert "This combination is not a run of the paper." in combined and "| benchmark | paper |" not in combined


def test_the_card_options_of_the_recipe_reach_the_card(tmp_path):
    """reer_model_license and reer_project_url go from the recipe's options to the card's metadata and body."""
    from huggingface_hub import ModelCard
    from trl import ModelConfig

    from reer_hf.sft.report import SFTDataReport
    from reer_hf.sft.train import _card_context

    def card(**options) -> ModelCard:
        args = SFTScriptArguments(dataset_name="m-a-p/DeepWriting-20K", **options)
        context = _card_context(args, sft_config(tmp_path), ModelConfig(), SFTDataReport(), "Qwen/Qwen3-8B-Base")
        return ModelCard(str(render_model_card(**context)))

    default = card()
    assert default.data.license == "apache-2.0"  # the base model's, as the card's default states it
    assert "https://example.org/reer" not in str(default)
    custom = card(reer_model_license="mit", reer_project_url="https://example.org/reer")
    assert custom.data.license == "mit"
    assert "https://example.org/reer" in str(custom)
    assert card(reer_model_license=None).data.license is None


def test_model_license_from_the_command_line():
    """'None' on the command line means no licence; 'other' fails at parse time, not after training when the card is
    written."""
    assert SFTScriptArguments(dataset_name="x.jsonl", reer_model_license="None").reer_model_license is None
    with pytest.raises(ValueError, match="licence name and link"):
        SFTScriptArguments(dataset_name="x.jsonl", reer_model_license="other")
