"""The scored span: the answer tokens the official score averages over, token for token."""

from __future__ import annotations

import json

import pytest
from testing_utils import REPO_ROOT

from reer_hf.scoring.config import ScorerConfig
from reer_hf.scoring.scorer import Scorer, scored_tokens

CASES = [json.loads(line) for line in (REPO_ROOT / "tests/data/fidelity/scored_span_cases.jsonl").open()]


def test_scored_tokens_take_the_tokens_straddling_either_boundary():
    offsets = [(0, 0), (0, 4), (4, 9), (9, 12), (12, 15), (15, 20)]
    assert list(scored_tokens(offsets, 9, 15)) == [3, 4]  # on token boundaries: exactly the tokens inside
    assert list(scored_tokens(offsets, 10, 14)) == [3, 4]  # inside tokens: the straddling ones count
    assert list(scored_tokens(offsets, 15, 15)) == [5]  # an empty span: the one token there
    assert list(scored_tokens(offsets, 12, 30)) == [4, 5]  # past the end: up to the last token


def test_single_segment_answers_score_the_whole_answer_unless_official(tiny_tokenizer):
    answer = "A single short paragraph."
    text, lo, hi = Scorer(tiny_tokenizer, ScorerConfig(), backend=lambda rows: []).build("Q", "plan", answer)
    assert text[lo:hi] == answer
    official = ScorerConfig(scorer_single_segment="official")
    text, lo, hi = Scorer(tiny_tokenizer, official, backend=lambda rows: []).build("Q", "plan", answer)
    assert lo == hi == text.index(answer) + len(answer)
    (row,) = Scorer(tiny_tokenizer, official, backend=lambda rows: []).encode(["Q"], ["plan"], [answer])
    assert len(row.scored) == 1


@pytest.mark.slow
def test_every_official_case_with_the_demo_tokenizer(demo_model_dir):
    """The official code scores its own string (``<think>`` ... ``</answer>``) alone; the scorer tokenizes the chat
    context before it, which must not move a single boundary token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_dir))
    scorer = Scorer(tokenizer, ScorerConfig(scorer_single_segment="official"), backend=lambda rows: [])
    for case in CASES:
        text, lo, hi = scorer.build("Write the passage.", case["thinking"], case["answer"])
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        tokens = list(scored_tokens(offsets, lo, hi))
        start = hi - len(case["answer"])
        got = (len(tokens), offsets[tokens[0]][0] - start, offsets[tokens[-1]][1] - start)
        assert got == (case["n_scored"], case["first_token_start_in_answer"], case["last_token_end_in_answer"])
        (row,) = scorer.encode(["Write the passage."], [case["thinking"]], [case["answer"]])
        assert row.scored == tokens
