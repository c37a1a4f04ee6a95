"""Maps whose function holds a model are fingerprinted from what they depend on: datasets never hashes the model."""

from __future__ import annotations

import datasets.arrow_dataset
import datasets.fingerprint
import pytest
from openai_server import OpenAIServer
from test_search import Writer
from test_synthesis import configs, pairs_file, scripted  # noqa: F401  (pairs_file is a fixture)

import reer_hf.synthesis.runner as synthesis
from reer_hf.scoring.config import ScorerConfig, ScoreScriptArguments
from reer_hf.scoring.dataset import score_dataset
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.search import Searcher


@pytest.fixture
def hashed(monkeypatch) -> list:
    """The functions of the maps datasets fingerprinted by hashing (``update_fingerprint``)."""
    seen: list = []
    real = datasets.fingerprint.update_fingerprint

    def spy(fingerprint, transform, transform_args):
        seen.append(transform_args.get("function"))
        return real(fingerprint, transform, transform_args)

    monkeypatch.setattr(datasets.fingerprint, "update_fingerprint", spy)  # transforms decorated for fingerprints
    monkeypatch.setattr(datasets.arrow_dataset, "update_fingerprint", spy)  # Dataset.map
    return seen


def holds_a_model(function) -> bool:
    return isinstance(getattr(function, "__self__", function), (Scorer, Searcher))


def test_scoring_a_dataset_never_hashes_the_scorer(hashed, tiny_llama_dir, tmp_path):
    config = ScorerConfig(scorer_model=str(tiny_llama_dir), scorer_dtype="fp32", scorer_device="cpu")
    args = ScoreScriptArguments(max_rows=2, output_dir=str(tmp_path / "score"))
    summary = score_dataset(args, config)
    assert summary["rows"] == 2
    assert hashed and not any(holds_a_model(f) for f in hashed)  # other maps are hashed; the scorer's is not


@pytest.mark.slow
def test_synthesis_pieces_never_hash_the_searcher(hashed, tiny_llama_dir, tmp_path, pairs_file):  # noqa: F811
    with OpenAIServer(Writer()) as server:
        run = configs(tmp_path / "run", pairs_file, tiny_llama_dir, scripted(server))
        synthesis.synthesize(*run, process_index=0, num_processes=1)
    assert not any(holds_a_model(f) for f in hashed)
    first, second = synthesis.map_fingerprint("run", "piece-000000"), synthesis.map_fingerprint("run", "piece-000001")
    assert first != second and len(first) == 32
    datasets.fingerprint.validate_fingerprint(first)
