"""Dataset and model cards rendered from Jinja templates with ``huggingface_hub`` (TRL's pattern), with metadata that
follows the Hub's card conventions.

The templates sit at the top of the repository, in ``model_cards/``, and ship inside the package as
``reer_hf.model_cards`` (``package-dir`` in ``pyproject.toml``): a checkout and an installed wheel read the same files
through ``importlib.resources``, so TRL's ``create_model_card`` finds them wherever the package is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from reer_hf.core.data import hub_id

if TYPE_CHECKING:
    from huggingface_hub import DatasetCard, ModelCard

ARXIV_ID = "2509.06160"
CITATION = """@inproceedings{reer2026,
  title     = {Reverse-Engineered Reasoning for Open-Ended Generation},
  author    = {Wang, Haozhe and others},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2026},
  note      = {arXiv:2509.06160}
}"""
#: The Hub's ``size_categories`` values, by exclusive upper bound.
SIZE_CATEGORIES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
#: The licence a dataset card declares when its rows keep their source pairs' various licences: ``license: other``
#: needs a name and a link on the Hub, and the link is the ``LICENSE.md`` written next to the card.
SOURCE_LICENSE_NAME = "source-licenses"
LICENSE_FILE = "LICENSE.md"
#: Base models whose licence the model card may state on its own (``license="auto"``); any other is left unstated.
KNOWN_BASE_LICENSES = {"Qwen/Qwen3-": "apache-2.0", "HuggingFaceTB/SmolLM2-": "apache-2.0"}


def template(name: str) -> str:
    """The text of card template ``name`` from the installed ``reer_hf.model_cards``."""
    try:
        return resources.files("reer_hf.model_cards").joinpath(name).read_text(encoding="utf-8")
    except ModuleNotFoundError as err:  # an editable install made before the templates were mapped into the package
        raise ModuleNotFoundError(
            f"{err}; reinstall reer-hf (pip install -e . --no-deps) to get the card templates"
        ) from err


def size_category(rows: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), "n>1T")


def dataset_configs(config_name: str) -> list[dict]:
    """The ``configs`` metadata of one config, with the data files ``Dataset.push_to_hub`` writes for it."""
    return [{"config_name": config_name, "data_files": [{"split": "train", "path": f"{config_name}/train-*"}]}]


def render_dataset_card(summary: dict, config: dict, args: Any, repo_id: str | None = None) -> DatasetCard:
    """The dataset card of a synthesis run: licence, languages, sources, the config's data files, the whole search
    configuration and the run summary. ``args`` is the run's ``SynthesisScriptArguments``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    source_hub_id = hub_id(args.dataset_name)
    other = args.source_license == "other"
    data = DatasetCardData(
        pretty_name=args.dataset_pretty_name,
        language=sorted(summary.get("languages") or {"en": 0}),
        license=args.source_license,
        license_name=SOURCE_LICENSE_NAME if other else None,
        license_link=LICENSE_FILE if other else None,
        size_categories=[size_category(summary.get("kept", 0))],
        source_datasets=[source_hub_id] if source_hub_id else None,
        task_categories=["text-generation"],
        tags=["reer", "reasoning", "long-form-writing", "synthetic", "reer-hf", f"arxiv:{ARXIV_ID}"],
        configs=dataset_configs(summary["hub_config_name"]),
    )
    return DatasetCard.from_template(
        data,
        template_str=template("dataset_card.md"),
        pretty_name=args.dataset_pretty_name,
        summary=summary,
        config=config,
        config_yaml=yaml.safe_dump(config, sort_keys=False, allow_unicode=True).strip(),
        repo_id=repo_id or args.hub_dataset_id or "<your-repo-id>",
        source=_source(args, source_hub_id),
        source_license=args.source_license,
        license_file=LICENSE_FILE if other else None,
        project_url=getattr(args, "project_url", None),
        arxiv_id=ARXIV_ID,
        citation=CITATION,
    )


def _source(args: Any, source_hub_id: str | None) -> str:
    if args.source_description:
        return args.source_description
    if source_hub_id:
        return f"Query/answer pairs from [`{source_hub_id}`](https://huggingface.co/datasets/{source_hub_id})."
    return f"Query/answer pairs from `{args.dataset_name}`."


def render_license_notice(summary: dict, config: dict, args: Any) -> str | None:
    """``LICENSE.md`` of a dataset whose card says ``license: other``: the rows keep their source pairs' licences
    (which vary, so no single one can be named) and the text the generator wrote may carry its terms of use."""
    if args.source_license != "other":
        return None
    import jinja2

    source_hub_id = hub_id(args.dataset_name)
    return jinja2.Template(template("dataset_license.md")).render(
        pretty_name=args.dataset_pretty_name,
        source=_source(args, source_hub_id),
        config=config,
        summary=summary,
    )


def _loss_table(log_history: list[dict], max_rows: int = 20) -> list[dict]:
    """The logged training losses (step, epoch, loss, learning rate), thinned to at most ``max_rows`` (last kept)."""
    rows = [
        {
            "step": e.get("step"),
            "epoch": round(e["epoch"], 3) if "epoch" in e else None,
            "loss": round(e["loss"], 4),
            "learning_rate": e.get("learning_rate"),
        }
        for e in log_history
        if "loss" in e
    ]
    if len(rows) > max_rows:
        stride = -(-len(rows) // max_rows)
        rows = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
    return rows


def model_license(base_model: str, license: str | None = "auto") -> str | None:
    """The licence the model card states: ``auto`` is the base model's when it is one we know (a fine-tune inherits
    its base model's licence), else none, since an arbitrary base model's licence cannot be guessed."""
    if license != "auto":
        return license
    return next((lic for prefix, lic in KNOWN_BASE_LICENSES.items() if base_model.startswith(prefix)), None)


def render_model_card(
    base_model: str,
    run: dict,
    data: dict,
    hyperparameters: dict,
    versions: dict,
    metrics: dict | None = None,
    log_history: list[dict] | None = None,
    recipe_yaml: str | None = None,
    recipe_path: str | None = None,
    command: str | None = None,
    distributed: str | None = None,
    repo_id: str | None = None,
    license: str | None = "auto",
    license_name: str | None = None,
    license_link: str | None = None,
    language: Sequence[str] | None = ("en", "zh"),
    project_url: str | None = None,
) -> ModelCard:
    """The model card of an SFT run (template ``model_card.md``): base model, data and ablation, the recipe YAML
    verbatim, training metrics, framework versions, intended use and limits, citation.

    ``run`` names the paper run (``name``, ``lora``, ``change``, ``scores``: the paper's numbers to compare against);
    ``data`` holds the data sources and the data report; Hub ids (not local paths) go into the card's metadata. A LoRA
    run saves adapters, so its card says ``library_name: peft`` and ``base_model_relation: adapter``. ``license`` is a
    Hub licence id, ``auto`` (see ``model_license``) or None (unstated); ``other`` needs ``license_name`` and
    ``license_link``, as on the Hub. ``language`` defaults to the languages REER's prompts and segmenter handle.
    """
    from huggingface_hub import ModelCard, ModelCardData

    license = model_license(base_model, license)
    if license == "other" and not (license_name and license_link):
        raise ValueError("license 'other' needs license_name and license_link (the Hub's convention)")
    lora = bool(run.get("lora"))
    base = hub_id(base_model)
    datasets = [d for d in (hub_id(data.get("dataset_name")), hub_id(data.get("mix_dataset_name"))) if d]
    card_data = ModelCardData(
        base_model=base,
        datasets=datasets or None,
        language=list(language) if language else None,
        library_name="peft" if lora else "transformers",
        license=license,
        license_name=license_name if license == "other" else None,
        license_link=license_link if license == "other" else None,
        pipeline_tag="text-generation",
        tags=["reer", "deepwriter", "long-form-writing", "reasoning", "sft", "trl", "reer-hf", f"arxiv:{ARXIV_ID}"]
        + (["lora", "peft"] if lora else []),
        base_model_relation=("adapter" if lora else "finetune") if base else None,
    )
    return ModelCard.from_template(
        card_data,
        template_str=template("model_card.md"),
        base_model=base_model,
        run=run,
        data=data,
        hyperparameters=hyperparameters,
        versions=versions,
        metrics=metrics or {},
        losses=_loss_table(log_history or []),
        recipe_yaml=recipe_yaml.strip() if recipe_yaml else None,
        recipe_path=recipe_path,
        command=command,
        distributed=distributed,
        repo_id=repo_id or "<your-repo-id>",
        project_url=project_url,
        arxiv_id=ARXIV_ID,
        citation=CITATION,
    )
