"""The fp32 check of a run's improvements, on real forwards of a tiny model."""

from __future__ import annotations

from testing_utils import build_tiny_model

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer
from reer_hf.synthesis.verify import plain_fp32_config, verify_improvements


def test_reported_improvements_are_rescored_in_fp32(tiny_tokenizer, pairs):
    config = plain_fp32_config(ScorerConfig(scorer_clip=False, scorer_max_length=None))
    scorer = Scorer(tiny_tokenizer, config, model=build_tiny_model("llama", len(tiny_tokenizer)))
    query, answer = pairs[0]["query"], pairs[0]["answer"]
    a, b = "A plan in one line.", "A longer plan.\n\nIt has two paragraphs, and more words in each one of them."
    (sa, sb) = (r.score for r in scorer.score([query, query], [a, b], [answer, answer]))
    better, worse = (a, b) if sa < sb else (b, a)
    rows = [
        {"query": query, "answer": answer, "z0": worse, "z_star": better, "initial_score": 9.0, "final_score": 8.0},
        {"query": query, "answer": answer, "z0": better, "z_star": worse, "initial_score": 9.0, "final_score": 8.0},
        {"query": query, "answer": answer, "z0": a, "z_star": a, "initial_score": 9.0, "final_score": 9.0},
    ]
    report = verify_improvements(rows, scorer)
    assert (report["improved_reported"], report["improved_in_fp32"], report["reversed"]) == (2, 1, 1)
    assert report["per_row"][0]["fp32_gain"] == abs(sa - sb) and report["per_row"][1]["holds"] is False
    assert report["max_score_drift_from_fp32"] > 0  # the reported scores above are made up
