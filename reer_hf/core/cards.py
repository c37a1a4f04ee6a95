"""Dataset and model cards rendered from the Jinja templates in ``model_cards/`` (TRL's pattern), and the Hub push.

The templates live at the top of the repository (``model_cards/``), next to the recipes that produce the artifacts.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).resolve().parents[2] / "model_cards"
CITATION = """@inproceedings{reer2026,
  title     = {Reverse-Engineered Reasoning for Open-Ended Generation},
  author    = {Wang, Haozhe and others},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2026},
  note      = {arXiv:2509.06160}
}"""


def template_path(name: str) -> Path:
    path = CARDS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"Card template {path} is missing; run from a checkout of reer-hf (pip install -e .)")
    return path


def _size_category(rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return label
    return "n>1M"


def render_dataset_card(summary: dict, config: dict, args, repo_id: str | None = None):
    """The dataset card of a synthesis run: licence, languages, the whole search configuration, the run summary."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        language=sorted(summary.get("languages") or {"en": 0}),
        license=args.source_license,
        pretty_name=args.dataset_pretty_name,
        size_categories=_size_category(summary.get("kept", 0)),
        task_categories=["text-generation"],
        tags=["reer", "reasoning", "long-form-writing", "synthetic", "reer-hf"],
        arxiv="2509.06160",
    )
    source = args.source_description or f"Query/answer pairs from `{args.dataset_name}`."
    return DatasetCard.from_template(
        data,
        template_path=str(template_path("dataset_card.md")),
        pretty_name=args.dataset_pretty_name,
        summary=summary,
        config=config,
        config_yaml=yaml.safe_dump(config, sort_keys=False, allow_unicode=True).strip(),
        repo_id=repo_id or args.hub_dataset_id or "<your-repo-id>",
        source_description=source,
        source_license=args.source_license,
        citation=CITATION,
    )


def hub_folder(ds, out: Path, config_name: str, card) -> Path:
    """The local image of the Hub dataset repo: ``<config>/train-*.parquet`` with the kept rows, the run's summary and
    plot next to them, and the card whose ``configs`` metadata names the config (so ``load_dataset(folder_or_repo,
    config_name)`` works). ``push_dataset`` uploads exactly this folder."""
    folder = out / "hub"
    if folder.exists():  # only this run's config: a stale one would be uploaded too
        shutil.rmtree(folder)
    data_dir = folder / config_name
    data_dir.mkdir(parents=True, exist_ok=True)
    kept = ds.filter(lambda s: s == "ok", input_columns="status")
    kept.to_parquet(str(data_dir / "train-00000-of-00001.parquet"))
    for name in ("summary.json", "scores.png"):
        if (out / name).exists():
            shutil.copyfile(out / name, data_dir / name)
    card = type(card)(str(card))  # a copy
    card.data.configs = [
        {"config_name": config_name, "data_files": [{"split": "train", "path": f"{config_name}/train-*.parquet"}]}
    ]
    card.save(str(folder / "README.md"))
    return folder


def push_dataset(folder: Path, repo_id: str, config_name: str, private: bool = False) -> str:
    """Upload ``hub_folder``'s output to ``repo_id``; configs pushed earlier to the repo stay listed in its card."""
    from huggingface_hub import DatasetCard, HfApi
    from huggingface_hub.errors import EntryNotFoundError

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    try:
        existing = DatasetCard.load(repo_id, repo_type="dataset").data.to_dict().get("configs") or []
    except EntryNotFoundError:  # a new repo has no card yet
        existing = []
    card = DatasetCard.load(str(folder / "README.md"))
    ours = card.data.to_dict()["configs"]
    card.data.configs = [c for c in existing if c.get("config_name") != config_name] + ours
    card.save(str(folder / "README.md"))
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        commit_message=f"REER synthesis: {config_name}",
    )
    url = f"https://huggingface.co/datasets/{repo_id}"
    logger.info("Pushed %s to %s", config_name, url)
    return url


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
):
    """The model card of an SFT run (``model_cards/model_card.md``): base model, data and ablation, the recipe YAML
    verbatim, training metrics, framework versions, intended use and limits, citation.

    ``run`` names the paper run (``name``, ``change``, ``scores``: the paper's numbers to compare against); ``data``
    holds the data sources and the data report; Hub ids (not local paths) go into the card's metadata.
    """
    from huggingface_hub import ModelCard, ModelCardData

    def hub_id(ref: str | None) -> str | None:
        """``owner/name`` references that are no local path or file: the only ones the Hub metadata may name."""
        if not ref or Path(ref).exists() or Path(ref).suffix in (".parquet", ".jsonl", ".json", ".csv"):
            return None
        return ref if re.fullmatch(r"[\w.-]+/[\w.-]+", ref) and not ref.startswith(".") else None

    datasets = [d for d in (hub_id(data.get("dataset_name")), hub_id(data.get("mix_dataset_name"))) if d]
    card_data = ModelCardData(
        base_model=hub_id(base_model),
        datasets=datasets or None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["reer", "deepwriter", "long-form-writing", "reasoning", "sft", "trl", "reer-hf"]
        + (["lora"] if run.get("lora") else []),
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path("model_card.md")),
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
        citation=CITATION,
    )
