"""What a finished synthesis run leaves behind: its summary (counts, scores, filters, timings), the Hub config name
built from its key options, the output folder (dataset, parquet, summary, plot, card, Hub folder), and its push."""

from __future__ import annotations

import json
import logging
import re
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from reer_hf.core.cache import atomic_write
from reer_hf.core.cards import LICENSE_FILE, render_dataset_card, render_license_notice
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.plots import plot_scores
from reer_hf.synthesis.report import REPORT_FILE, RUN_CONFIG_FILE, write_report
from reer_hf.synthesis.trajectory import STATUS_OK

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

#: The run's files that travel with its config in the Hub repo (``<config>/<name>``).
RUN_FILES = ("summary.json", "scores.png", REPORT_FILE)


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "p10": round(q[0], 4),
        "p90": round(q[-1], 4),
        "min": round(values[0], 4),
        "max": round(values[-1], 4),
    }


def summarize(ds, stats: Counter, wall_seconds: float) -> dict:
    """The run summary: counts by status and reason, scores before/after, acceptance per step, tokens and times."""
    columns = (
        "status",
        "drop_reason",
        "trace",
        "initial_score",
        "final_score",
        "generated_tokens",
        "scored_tokens",
        "language",
    )
    data = {c: ds[c] if ds is not None else [] for c in columns}
    rows = len(data["status"])
    status = Counter(data["status"])
    reasons = Counter(f"{s}:{r}" for s, r in zip(data["status"], data["drop_reason"], strict=True) if r)
    filters = Counter(r for s, r in zip(data["status"], data["drop_reason"], strict=True) if s == "filtered")
    filters["dedup"] = status.get("duplicate", 0)
    filters["leak_trajectory"] = reasons.get("dropped:leak", 0)
    candidates: Counter = Counter()
    attempts: Counter = Counter()
    accepted: Counter = Counter()
    initial, final, improved = [], [], 0
    gains, without_margin, by_margin = [], 0, 0
    for row_status, trace, s0, s1 in zip(
        data["status"], data["trace"], data["initial_score"], data["final_score"], strict=True
    ):
        for step in trace:
            candidates.update(step["candidate_status"])
            attempts[step["segment"]] += 1
            accepted[step["segment"]] += step["accepted"]
            best = step.get("best_gain")
            if step["accepted"] and best is not None:
                gains.append(best)
            without_margin += best is not None and best > 0
            by_margin += best is not None and 0 < best <= (step.get("margin") or 0.0)
        if s0 is not None and s1 is not None and row_status in (STATUS_OK, "filtered"):
            initial.append(s0)
            final.append(s1)
            improved += s1 < s0
    searched = len(initial)
    filters["leak_rewrite"] = candidates.get("leak", 0)
    kept = status.get(STATUS_OK, 0)
    return {
        "rows": rows,
        "kept": kept,
        "status": dict(status),
        "languages": dict(Counter(data["language"])),
        "drop_reasons": dict(sorted(reasons.items())),
        "filters": dict(filters),
        "candidates": dict(candidates),
        "initial_score": _quantiles(initial),
        "final_score": _quantiles(final),
        "rows_improved": improved,
        "rows_scored": searched,
        "mean_score_drop": round(statistics.fmean(a - b for a, b in zip(initial, final, strict=True)), 4)
        if initial
        else None,
        "accepted_gains": {
            "count": len(gains),
            "median": round(statistics.median(gains), 6) if gains else None,
            "min": round(min(gains), 6) if gains else None,
        },
        "accepted_without_margin": without_margin,
        "rejected_by_margin": by_margin,
        "acceptance_per_step": {
            str(k): {"attempted": attempts[k], "accepted": accepted[k], "rate": round(accepted[k] / attempts[k], 3)}
            for k in sorted(attempts)
        },
        "generator_calls": stats.get("generator_calls", 0),
        "generator_requests": stats.get("generator_requests", 0),
        "generator_errors": stats.get("generator_errors", 0),
        "generator_retries": stats.get("generator_retries", 0),
        # prompt tokens the generator prefilled (a local backend: each distinct prompt once, less what it carried
        # from an earlier step's prompt; a server: as it reports them), and what prefilling each sample would cost
        "generator_prompt_tokens": stats.get("generator_prompt_tokens", 0),
        "generator_prompt_tokens_carried": stats.get("generator_prompt_tokens_carried", 0),
        "generator_prompt_tokens_requested": stats.get("generator_prompt_tokens_requested", 0),
        # attempts whose generator requests failed in transport (each piece later redone) and the time they cost
        "generator_failed_pieces": stats.get("generator_failed_pieces", 0),
        "generator_failed_seconds": round(stats.get("generator_failed_seconds", 0.0), 2),
        "scorer_calls": stats.get("scorer_calls", 0),
        "generated_tokens": sum(data["generated_tokens"]),
        "scored_tokens": sum(data["scored_tokens"]),
        "generator_seconds": round(stats.get("generator_seconds", 0.0), 2),
        "scorer_seconds": round(stats.get("scorer_seconds", 0.0), 2),
        "search_seconds": round(stats.get("wall_seconds", 0.0), 2),
        "wall_seconds": round(wall_seconds, 2),
        "rows_per_second": round(rows / stats["wall_seconds"], 4) if stats.get("wall_seconds") else None,
    }


def config_name(search_cfg: SearchConfig, scorer_cfg: ScorerConfig, gen_cfg: GeneratorConfig) -> str:
    """A Hub config name that carries the key hyperparameters, e.g. ``qwen3-8b-base-k2-s10-t0.25``."""

    def short(model: str) -> str:
        return model.rstrip("/").split("/")[-1].split(":")[-1].lower()

    scorer = short(scorer_cfg.scorer_model)
    parts = [
        scorer,
        f"k{search_cfg.search_num_expansion}",
        f"s{search_cfg.search_max_step}",
        f"t{search_cfg.search_stop_thresh:g}",
    ]
    if search_cfg.search_num_rollouts > 1:
        parts.append(f"r{search_cfg.search_num_rollouts}")
    if not search_cfg.search_reflection:
        parts.append("noreflect")
    if search_cfg.search_edit_format != "analyze":
        parts.append(search_cfg.search_edit_format)
    if short(gen_cfg.generator_model) != scorer:
        parts.append(f"gen-{short(gen_cfg.generator_model)}")
    return re.sub(r"[^a-z0-9._-]+", "-", "-".join(parts))


def save_outputs(ds, summary: dict, config: dict, args: SynthesisScriptArguments, out: Path) -> Path | None:
    """The dataset (save_to_disk and parquet), the summary JSON, the run's options (``run_config.json``: the scorer's
    exactly as it ran, what ``scripts/verify_fp32.py`` re-scores with), the plot, the report, the dataset card, and
    the local image of the Hub repo (``out/hub``: what ``--push_to_hub`` sends, see ``push_dataset``); returns that
    folder."""
    out.mkdir(parents=True, exist_ok=True)
    if ds is not None:
        if (out / "dataset").exists():
            shutil.rmtree(out / "dataset")
        ds.save_to_disk(str(out / "dataset"))
        ds.to_parquet(str(out / "reer.parquet"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    atomic_write(out / RUN_CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(config, indent=2, default=str)))
    if ds is not None and len(ds):
        plot_scores(ds, out / "scores.png")
    if ds is not None:
        report = write_report(ds, summary, config, out / REPORT_FILE, args.report_rows, source="this run")
        logger.info(
            "Report: %s (%d of %d rows, %.1f s)", report["path"], report["shown"], report["rows"], report["seconds"]
        )
    card = render_dataset_card(summary, config, args)
    card.save(str(out / "README.md"))
    if ds is None:
        return None
    return hub_folder(ds, out, summary["hub_config_name"], card, render_license_notice(summary, config, args))


def hub_folder(ds, out: Path, config_name: str, card, license_notice: str | None = None) -> Path:
    """The local image of the Hub dataset repo, what ``push_dataset`` sends (the rows through ``Dataset.push_to_hub``,
    then the rest in one commit): the card (its ``configs`` name this config, so ``load_dataset(folder, config_name)``
    works), ``LICENSE.md`` when the card links one, the kept rows as ``<config>/train-00000-of-00001.parquet`` (where
    ``Dataset.push_to_hub`` puts them) and the run's summary, plot and report next to them."""
    folder = out / "hub"
    if folder.exists():  # only this run's config: a stale one would be uploaded too
        shutil.rmtree(folder)
    data_dir = folder / config_name
    data_dir.mkdir(parents=True)
    kept = ds.filter(lambda s: s == STATUS_OK, input_columns="status")
    kept.to_parquet(str(data_dir / "train-00000-of-00001.parquet"))
    for name in RUN_FILES:
        if (out / name).exists():
            shutil.copyfile(out / name, data_dir / name)
    card.save(str(folder / "README.md"))
    if license_notice:
        (folder / LICENSE_FILE).write_text(license_notice, encoding="utf-8")
    return folder


def push_dataset(
    folder: Path,
    repo_id: str,
    config_name: str,
    private: bool = False,
    revision: str | None = None,
    api: HfApi | None = None,
) -> str:
    """Upload ``hub_folder``'s output to ``repo_id`` (branch ``revision``) in two commits.

    First the kept rows, with ``Dataset.push_to_hub``: it writes the parquet shards and merges this config's
    ``configs`` and ``dataset_info`` into the repo's card, keeping the configs pushed earlier. Then, on top of exactly
    that commit, our card carrying the repo's ``configs`` and ``dataset_info`` over (replacing the card as a whole
    would drop them), with the licence notice, the summary, the plot and the report. Data first, so a failed second
    commit leaves a repo that loads; returns the repo's URL.
    """
    from datasets import Dataset
    from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi

    api = api or HfApi()
    shards = sorted(str(p) for p in (folder / config_name).glob("train-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"No rows to push in {folder / config_name}")
    rows = Dataset.from_parquet(shards)
    commit = rows.push_to_hub(
        repo_id,
        config_name=config_name,
        split="train",
        data_dir=config_name,
        private=private,
        revision=revision,
        commit_message=f"REER synthesis: {config_name} (rows)",
    )
    repo_id = commit.repo_url.repo_id  # push_to_hub resolves a bare name to the user's namespace
    pushed = DatasetCard.load(api.hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=commit.oid))
    card = DatasetCard.load(folder / "README.md")
    for key in ("configs", "dataset_info"):
        if pushed.data.get(key) is not None:
            card.data[key] = pushed.data[key]
    extra = [folder / LICENSE_FILE, *(folder / config_name / name for name in RUN_FILES)]
    api.create_commit(
        repo_id,
        operations=[CommitOperationAdd("README.md", str(card).encode("utf-8"))]
        + [CommitOperationAdd(p.relative_to(folder).as_posix(), str(p)) for p in extra if p.is_file()],
        commit_message=f"REER synthesis: {config_name} (card, summary, plot, report)",
        repo_type="dataset",
        revision=revision,
        parent_commit=commit.oid,
    )
    url = f"https://huggingface.co/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")
    logger.info("Pushed %s to %s", config_name, url)
    return url
