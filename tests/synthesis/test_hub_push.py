"""The run's local image of the Hub repo (``out/hub``) and its push: ``Dataset.push_to_hub`` for the rows, then the
card, licence notice, summary and plot in one commit on top of it, into a dataset repo on disk standing in for the
Hub (its card updated by ``datasets``' own merge, as ``push_to_hub`` does)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset, Features, SplitInfo, Value, load_dataset, load_from_disk
from huggingface_hub import CommitInfo, DatasetCard

from reer_hf.core.formats import to_messages
from reer_hf.generation.config import GeneratorConfig
from reer_hf.scoring.config import ScorerConfig
from reer_hf.synthesis.config import FilterConfig, SearchConfig, SynthesisScriptArguments
from reer_hf.synthesis.outputs import push_dataset, save_outputs, summarize
from reer_hf.synthesis.search import search_features

REPO = "me/reer-data"
STEP = {
    "segment": 0,
    "candidates": ["a better plan"],
    "candidate_scores": [1.1],
    "candidate_status": ["scored"],
    "candidate_gains": [0.1],
    "cleared": [True],
    "incumbent_score": 1.2,
    "best_gain": 0.1,
    "margin": 0.0,
    "chosen": 0,
    "accepted": True,
    "score_after": 1.1,
}


def run_rows(n: int, tag: str) -> Dataset:
    """Rows shaped like a synthesis run's, the last one dropped."""
    rows = []
    for i in range(n):
        ok = i < n - 1
        rows.append(
            {
                "query": f"{tag} query {i}",
                "answer": f"{tag} answer {i}",
                "language": "en",
                "z0": "first plan",
                "z_star": "better plan",
                "initial_score": 1.2,
                "final_score": 1.1 if ok else None,
                "initial_nll": 1.2,
                "final_nll": 1.1,
                "n_segments": 2,
                "trace": [STEP] if ok else [],
                "status": "ok" if ok else "dropped",
                "drop_reason": None if ok else "too_long",
                "drop_evidence": None if ok else {"check": "thinking_tokens", "text": None, "value": 3, "limit": 2},
                "stop_reason": "max_step",
                "z_star_tokens": 3,
                "generated_tokens": 10,
                "scored_tokens": 20,
                "messages": to_messages(f"{tag} query {i}", "better plan", f"{tag} answer {i}"),
            }
        )
    features = Features({"query": Value("string"), "answer": Value("string"), **search_features()})
    return Dataset.from_list(rows, features=features)


def finish_run(out: Path, config_name: str, n: int = 4, **options) -> Dataset:
    """What ``synthesize`` does after the search: summary, outputs, card and ``out/hub``."""
    ds = run_rows(n, config_name)
    args = SynthesisScriptArguments(dataset_name="me/pairs", dataset_pretty_name=f"Run {config_name}", **options)
    config = {
        k: v
        for c in (args, GeneratorConfig(), SearchConfig(), FilterConfig(), ScorerConfig())
        for k, v in dataclasses.asdict(c).items()
    }
    summary = {**summarize(ds, Counter(), 1.0), "hub_config_name": config_name, "noise_floor": None}
    assert save_outputs(ds, summary, config, args, out) == out / "hub"
    return ds


class LocalHub:
    """A dataset repo on disk in place of the Hub. ``push_to_hub`` (patched onto ``Dataset``) writes the shard and
    updates the card with ``datasets``' own merge (its private helper, the code the real push runs);
    ``hf_hub_download`` and ``create_commit`` read and write files. Every call is recorded."""

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple] = []
        self.commits = 0

    def _commit(self, repo_id: str, message: str) -> CommitInfo:
        self.commits += 1
        oid = f"{self.commits:040x}"
        url = f"https://huggingface.co/datasets/{repo_id}/commit/{oid}"
        return CommitInfo(commit_url=url, commit_message=message, commit_description="", oid=oid)

    def push_to_hub(self, ds: Dataset, repo_id: str, **kwargs) -> CommitInfo:
        from datasets.arrow_dataset import _get_updated_dataset_card
        from fsspec.implementations.dirfs import DirFileSystem
        from fsspec.implementations.local import LocalFileSystem

        self.calls.append(("push_to_hub", repo_id, kwargs))
        split, data_dir = kwargs["split"], kwargs["data_dir"]
        shard = self.root / data_dir / f"{split}-00000-of-00001.parquet"
        shard.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(shard))
        card, _ = _get_updated_dataset_card(
            fs=DirFileSystem(path=str(self.root), fs=LocalFileSystem()),
            config_name=kwargs["config_name"],
            splits_info=[SplitInfo(name=split, num_bytes=ds.data.nbytes, num_examples=len(ds))],
            features=ds.features,
            data_dir=data_dir,
            set_default=None,
            uploaded_sizes=[shard.stat().st_size],
            deleted_sizes=[0],
            remove_other_splits=False,
        )
        (self.root / "README.md").write_text(str(card), encoding="utf-8")
        return self._commit(repo_id, kwargs["commit_message"])

    def hf_hub_download(self, repo_id: str, filename: str, repo_type: str | None = None, revision=None) -> str:
        self.calls.append(("download", repo_id, filename, repo_type, revision))
        return str(self.root / filename)

    def create_commit(self, repo_id: str, operations, commit_message: str, **kwargs) -> CommitInfo:
        self.calls.append(("commit", repo_id, [op.path_in_repo for op in operations], commit_message, kwargs))
        for op in operations:
            path = self.root / op.path_in_repo
            path.parent.mkdir(parents=True, exist_ok=True)
            with op.as_file() as f:
                path.write_bytes(f.read())
        return self._commit(repo_id, commit_message)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> LocalHub:
    hub = LocalHub(tmp_path / "hub-repo")
    hub.root.mkdir()
    monkeypatch.setattr(Dataset, "push_to_hub", lambda self, repo_id, **kw: hub.push_to_hub(self, repo_id, **kw))
    return hub


@pytest.mark.slow  # a whole synthesis run
def test_the_local_hub_folder_is_what_the_push_uploads(tmp_path):
    ds = finish_run(tmp_path / "out", "cfg")
    hub = tmp_path / "out" / "hub"
    files = sorted(p.relative_to(hub).as_posix() for p in hub.rglob("*") if p.is_file())
    assert files == [
        "LICENSE.md",
        "README.md",
        "cfg/report.html",
        "cfg/scores.png",
        "cfg/summary.json",
        "cfg/train-00000-of-00001.parquet",
    ]
    kept = ds.filter(lambda s: s == "ok", input_columns="status")
    assert load_dataset(str(hub), "cfg", split="train").to_list() == kept.to_list()
    assert load_from_disk(str(tmp_path / "out" / "dataset")).to_list() == ds.to_list()  # every row, for inspection
    card = DatasetCard.load(hub / "README.md")
    assert card.data.license_link == "LICENSE.md" and card.data.pretty_name == "Run cfg"
    assert (tmp_path / "out" / "README.md").read_text() == (hub / "README.md").read_text()

    finish_run(tmp_path / "licensed", "cfg", source_license="mit")
    assert not (tmp_path / "licensed" / "hub" / "LICENSE.md").exists()


@pytest.mark.slow  # a whole synthesis run
def test_push_sends_the_rows_then_the_card_on_top_and_keeps_earlier_configs(tmp_path, hub):
    first = finish_run(tmp_path / "a", "cfg-a", n=3)
    url = push_dataset(tmp_path / "a" / "hub", REPO, "cfg-a", private=True, api=hub)
    assert url == f"https://huggingface.co/datasets/{REPO}"
    second = finish_run(tmp_path / "b", "cfg-b", n=4)
    url = push_dataset(tmp_path / "b" / "hub", REPO, "cfg-b", revision="v1", api=hub)
    assert url == f"https://huggingface.co/datasets/{REPO}/tree/v1"

    oid = f"{3:040x}"  # commits 1, 2: the first push; 3: the rows of the second
    assert hub.calls[3:] == [
        (
            "push_to_hub",
            REPO,
            {
                "config_name": "cfg-b",
                "split": "train",
                "data_dir": "cfg-b",
                "private": False,
                "revision": "v1",
                "commit_message": "REER synthesis: cfg-b (rows)",
            },
        ),
        ("download", REPO, "README.md", "dataset", oid),
        (
            "commit",
            REPO,
            ["README.md", "LICENSE.md", "cfg-b/summary.json", "cfg-b/scores.png", "cfg-b/report.html"],
            "REER synthesis: cfg-b (card, summary, plot, report)",
            {"repo_type": "dataset", "revision": "v1", "parent_commit": oid},
        ),
    ]
    assert hub.calls[0][2]["private"] is True

    card = DatasetCard.load(hub.root / "README.md")
    assert card.data.pretty_name == "Run cfg-b" and "**Config name:** `cfg-b`" in card.text  # the latest run's card
    assert [c["config_name"] for c in card.data.configs] == ["cfg-a", "cfg-b"]
    infos = {i["config_name"]: i["splits"][0]["num_examples"] for i in card.data.dataset_info}
    assert infos == {"cfg-a": 2, "cfg-b": 3}
    for ds, name in ((first, "cfg-a"), (second, "cfg-b")):
        kept = ds.filter(lambda s: s == "ok", input_columns="status").to_list()
        assert load_dataset(str(hub.root), name, split="train").to_list() == kept
        assert (hub.root / name / "summary.json").is_file() and (hub.root / name / "scores.png").is_file()
        assert (hub.root / name / "report.html").read_bytes() == (tmp_path / name[-1] / "report.html").read_bytes()


def test_push_refuses_a_folder_without_rows(tmp_path, hub):
    (tmp_path / "hub" / "cfg").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="No rows to push"):
        push_dataset(tmp_path / "hub", REPO, "cfg", api=hub)
    assert hub.calls == []
