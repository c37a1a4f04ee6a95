"""The segmenter of REER.md section 4."""

from reer_hf.core.segment import segment, segment_spans

LONG = "This paragraph is long enough to stand as a segment of its own, since it has well over a hundred characters."


def test_paragraphs_and_spans():
    text = f"{LONG} one\n\n{LONG} two\n\n   \n\n{LONG} three"
    assert segment(text) == [f"{LONG} one", f"{LONG} two", f"{LONG} three"]
    for (start, end), seg in zip(segment_spans(text), segment(text), strict=True):
        assert text[start:end] == seg


def test_short_pieces_merge_forward_and_trailing_leftover_joins_last():
    text = f"Hmm.\n\n{LONG} a\n\nshort\n\n{LONG} b\n\nThe end."
    assert segment(text) == [f"Hmm.\n\n{LONG} a", f"short\n\n{LONG} b\n\nThe end."]


def test_falls_back_to_lines_when_one_paragraph():
    text = f"{LONG} a\n{LONG} b\n  \n"
    assert segment(text) == [f"{LONG} a", f"{LONG} b"]


def test_never_splits_inside_latex_display():
    text = f"{LONG}\n\n\\[\n a + b\n\n = c \\]\n{LONG} after\n\n{LONG} last"
    segments = segment(text)
    assert len(segments) == 3
    assert segments[1].startswith("\\[") and "= c \\]" in segments[1]


def test_blank_and_single_short_text():
    assert segment("") == [] and segment(" \n\n \n") == []
    assert segment("Just a short answer.") == ["Just a short answer."]
    assert segment("short\n\ntoo") == ["short\n\ntoo"]


def test_min_chars_option():
    assert len(segment("aaaa\n\nbbbb\n\ncccc", min_chars=3)) == 3
