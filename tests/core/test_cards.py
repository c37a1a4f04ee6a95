"""Dataset and model cards: templates read from the package, metadata in the Hub's conventions (checked against the
fields ``huggingface_hub``'s card data defines, since ``card.validate()`` needs the Hub), honest licences and links."""

from __future__ import annotations

import inspect

import pytest
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData
from testing_utils import REPO_ROOT

from reer_hf.core.cards import (
    LICENSE_FILE,
    model_license,
    render_dataset_card,
    render_license_notice,
    render_model_card,
    size_category,
    template,
)
from reer_hf.core.formats import ASSISTANT_FORMAT
from reer_hf.synthesis.config import SynthesisScriptArguments

ARXIV_URL = "https://arxiv.org/abs/2509.06160"
PROJECT_URL = "https://example.org/reer-hf"
# Keys of the Hub's card metadata spec (hub-docs datasetcard.md / model-cards.md) that huggingface_hub's card data
# classes accept as extra keyword arguments instead of naming them.
DATASET_SPEC_EXTRAS = {"tags", "license_name", "license_link", "configs", "dataset_info"}
MODEL_SPEC_EXTRAS = {"base_model_relation"}


def known_keys(cls: type, extras: set[str]) -> set[str]:
    return (set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "ignore_metadata_errors"}) | extras


SUMMARY = {
    "rows": 12,
    "kept": 10,
    "status": {"ok": 10, "filtered": 2},
    "languages": {"zh": 4, "en": 8},
    "drop_reasons": {},
    "filters": {"dedup": 0},
    "candidates": {"scored": 40},
    "initial_score": {"median": 1.5, "p10": 1.2, "p90": 1.9},
    "final_score": {"median": 1.3, "p10": 1.1, "p90": 1.7},
    "rows_improved": 9,
    "rows_scored": 12,
    "accepted_gains": {"count": 14, "median": 0.02},
    "accepted_without_margin": 15,
    "rejected_by_margin": 1,
    "acceptance_per_step": {"0": {"attempted": 12, "accepted": 7, "rate": 0.583}},
    "generated_tokens": 1000,
    "scored_tokens": 5000,
    "generator_seconds": 1.0,
    "scorer_seconds": 2.0,
    "wall_seconds": 3.0,
    "noise_floor": None,
    "hub_config_name": "qwen3-8b-base-k2-s10-t0.25",
}
CONFIG = {
    "generator_model": "Qwen/Qwen2.5-32B-Instruct",
    "generator_backend": "openai",
    "scorer_model": "Qwen/Qwen3-8B-Base",
    "search_min_gain": "auto",
}


def dataset_card(**kwargs) -> DatasetCard:
    args = SynthesisScriptArguments(**{"dataset_name": "me/writing-pairs", **kwargs})
    return DatasetCard(str(render_dataset_card(SUMMARY, CONFIG, args)))  # what the Hub reads back


def model_card(lora: bool = False, **kwargs) -> ModelCard:
    card = render_model_card(
        **{
            "base_model": "Qwen/Qwen3-8B-Base",
            "run": {"name": "full", "lora": lora},
            "data": {
                "dataset_name": "me/DeepWriting-mine",
                "mix_dataset_name": "open-thoughts/OpenThoughts-114k",
                "report": {"shape": "synthesis", "steps": []},
                "assistant_format": ASSISTANT_FORMAT,
            },
            "hyperparameters": {"learning_rate": 2e-5},
            "versions": {"trl": "1.16.0"},
            **kwargs,
        }
    )
    return ModelCard(str(card))


def test_templates_are_read_from_the_package_and_are_the_top_level_folder():
    for name in ("dataset_card.md", "model_card.md", "dataset_license.md"):
        assert template(name) == (REPO_ROOT / "model_cards" / name).read_text(encoding="utf-8")


def test_dataset_card_metadata_follows_the_hub_conventions():
    card = dataset_card()
    data = card.data.to_dict()
    assert set(data) <= known_keys(DatasetCardData, DATASET_SPEC_EXTRAS), set(data) - known_keys(
        DatasetCardData, DATASET_SPEC_EXTRAS
    )
    assert data["license"] == "other" and data["license_name"] == "source-licenses"
    assert data["license_link"] == LICENSE_FILE
    assert data["language"] == ["en", "zh"] and data["task_categories"] == ["text-generation"]
    assert data["size_categories"] == ["n<1K"] and data["source_datasets"] == ["me/writing-pairs"]
    assert data["pretty_name"] == "REER deep-thinking trajectories"
    assert "arxiv:2509.06160" in data["tags"] and "arxiv" not in data
    name = SUMMARY["hub_config_name"]
    assert data["configs"] == [{"config_name": name, "data_files": [{"split": "train", "path": f"{name}/train-*"}]}]
    assert ARXIV_URL in card.text and "](LICENSE.md)" in card.text
    assert "github.com" not in card.text and "[reer-hf](" not in card.text
    assert "[`me/writing-pairs`](https://huggingface.co/datasets/me/writing-pairs)" in card.text
    assert f'load_dataset("<your-repo-id>", "{name}", split="train")' in card.text


def test_dataset_card_of_a_licensed_local_source_with_a_project_url(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("{}\n")
    card = dataset_card(
        dataset_name=str(pairs), source_license="cc-by-4.0", project_url=PROJECT_URL, hub_dataset_id="me/mine"
    )
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and not {"license_name", "license_link", "source_datasets"} & set(data)
    assert f"[reer-hf]({PROJECT_URL})" in card.text and "under `cc-by-4.0`" in card.text
    assert LICENSE_FILE not in card.text and 'load_dataset("me/mine"' in card.text
    args = SynthesisScriptArguments(dataset_name=str(pairs), source_license="cc-by-4.0")
    assert render_license_notice(SUMMARY, CONFIG, args) is None


def test_license_notice_names_the_sources_and_the_generator():
    args = SynthesisScriptArguments(dataset_name="me/writing-pairs", source_description="Essays from a forum.")
    notice = render_license_notice(SUMMARY, CONFIG, args)
    assert notice.startswith("# Licence of REER deep-thinking trajectories")
    assert "Essays from a forum." in notice and "`Qwen/Qwen2.5-32B-Instruct`" in notice


@pytest.mark.parametrize("lora", [False, True])
def test_model_card_metadata_follows_the_hub_conventions(lora):
    card = model_card(lora=lora)
    data = card.data.to_dict()
    assert set(data) <= known_keys(ModelCardData, MODEL_SPEC_EXTRAS), set(data) - known_keys(
        ModelCardData, MODEL_SPEC_EXTRAS
    )
    assert data["base_model"] == "Qwen/Qwen3-8B-Base"
    assert data["datasets"] == ["me/DeepWriting-mine", "open-thoughts/OpenThoughts-114k"]
    assert data["language"] == ["en", "zh"] and data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "text-generation"
    assert {"trl", "sft", "reer", "arxiv:2509.06160"} <= set(data["tags"])
    assert data["library_name"] == ("peft" if lora else "transformers")
    assert data["base_model_relation"] == ("adapter" if lora else "finetune")
    assert ("lora" in data["tags"]) is lora and ("LoRA adapters: needs `peft`" in card.text) is lora
    assert ARXIV_URL in card.text and "github.com" not in card.text and "[reer-hf](" not in card.text
    assert "- **Licence:** `apache-2.0`" in card.text


def test_model_card_links_the_project_only_when_given():
    assert f"by\n[reer-hf]({PROJECT_URL}) with TRL" in model_card(project_url=PROJECT_URL).text


def test_model_card_licence_is_an_input():
    assert model_license("Qwen/Qwen3-8B-Base") == "apache-2.0"
    assert model_license("HuggingFaceTB/SmolLM2-135M-Instruct") == "apache-2.0"
    assert model_license("someone/base-of-unknown-licence") is None  # never guessed
    unknown = model_card(base_model="someone/base-of-unknown-licence")
    assert "license" not in unknown.data.to_dict() and "not stated" in unknown.text
    assert "license" not in model_card(license=None).data.to_dict()
    assert model_card(license="mit").data.license == "mit"
    with pytest.raises(ValueError, match="license_name and license_link"):
        model_card(license="other")
    other = model_card(license="other", license_name="my-licence", license_link="https://example.org/licence")
    assert (other.data.license_name, other.data.license_link) == ("my-licence", "https://example.org/licence")
    assert "language" not in model_card(language=None).data.to_dict()


def test_a_local_base_model_is_no_hub_metadata(tmp_path):
    data = model_card(base_model=str(tmp_path), license=None).data.to_dict()
    assert "base_model" not in data and "base_model_relation" not in data


def test_size_categories_are_the_hubs():
    assert [size_category(n) for n in (0, 999, 1000, 20_000, 999_999, 5_000_000, 2 * 10**12)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
        "n>1T",
    ]
