"""Paragraph segmentation, as the official REER code cuts texts."""

import json

import pytest
from testing_utils import REPO_ROOT

from reer_hf.core.segment import segment, segment_bounds, segment_spans

LONG = "This paragraph is long enough to stand as a segment of its own, since it has well over a hundred characters."
CASES = [json.loads(line) for line in (REPO_ROOT / "tests/data/fidelity/segmentation_cases.jsonl").open()]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_every_official_case(case):
    assert segment(case["text"]) == case["segments"]


def test_segments_keep_their_separators_and_spans_their_own_text():
    text = f"{LONG} one\n\n{LONG} two\n\n   \n\n{LONG} three"
    assert segment(text) == [f"{LONG} one", f"\n\n{LONG} two", f"\n\n   \n\n{LONG} three"]
    assert "".join(segment(text)) == text
    bounds = segment_bounds(text)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))  # contiguous
    assert [text[a:b] for a, b in segment_spans(text)] == [f"{LONG} one", f"{LONG} two", f"{LONG} three"]


def test_short_pieces_wait_for_the_next_long_one_and_a_leftover_joins_the_last():
    text = f"Hmm.\n\n{LONG} a\n\nshort\n\n{LONG} b\n\nThe end."
    assert segment(text) == [f"Hmm.\n\n{LONG} a", f"\n\nshort\n\n{LONG} b\n\nThe end."]
    dialogue = "“Yes.”\n\n“No.”\n\n“Why?”\n\n" + LONG  # short lines belong to the paragraph that follows them
    assert segment(dialogue + "\n\n" + LONG) == [dialogue, "\n\n" + LONG]


def test_falls_back_to_lines_when_one_paragraph():
    text = f"{LONG} a\n{LONG} b\n  \n"
    assert segment(text) == [f"{LONG} a", f"\n{LONG} b\n  \n"]


def test_never_splits_inside_latex_display():
    text = f"{LONG}\n\n\\[\n a + b\n\n = c \\]\n{LONG} after\n\n{LONG} last"
    segments = segment(text)
    assert len(segments) == 3
    assert segments[1].startswith("\n\n\\[") and "= c \\]" in segments[1]


def test_blank_and_single_short_text():
    assert segment("") == [] and segment_spans(" \n\n \n") == []
    assert segment(" \n\n \n") == [" \n\n \n"]  # one blank segment, as the official code returns it
    assert segment("Just a short answer.") == ["Just a short answer."]
    assert segment("short\n\ntoo") == ["short\n\ntoo"]


def test_min_chars_option():
    assert segment("aaaa\n\nbbbb\n\ncccc", min_chars=3) == ["aaaa", "\n\nbbbb", "\n\ncccc"]
