"""The no-reflection rules (``remove_reflections``): each reflection phrase goes, in English and Chinese, and every
other character of the text stays as it was."""

from __future__ import annotations

import re

import pytest

from reer_hf.core.data import demo_pairs
from reer_hf.core.reflection import find_reflections, remove_reflections


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hmm, maybe I should start with the reader.", "I should start with the reader."),
        ("Hmm... Alternatively, maybe I should open with a storm.", "I should open with a storm."),
        ("Wait, no, the opening comes first.", "The opening comes first."),
        ("But wait, that's a bit flat.", "That's a bit flat."),
        ("Let me think. The reader is young.", "The reader is young."),
        ("Let me think about the reader.", "I think about the reader."),
        ("Let me see how the ending lands.", "I check how the ending lands."),
        ("I could write a poem, or maybe a story.", "I could write a poem, or a story."),
        ("The ending works, hmm. Then the middle.", "The ending works. Then the middle."),
        ("The storm, hmm, might be too loud.", "The storm might be too loud."),
        ("Wait a second, the title is wrong.", "The title is wrong."),
        ("On second thought, it is quiet. Then again, quiet can bore.", "It is quiet. Quiet can bore."),
        ("Hold on, scratch that. The dog stays.", "The dog stays."),
        ("Actually, no, the dog goes.", "The dog goes."),
        ("A calm opening.\n\nHmm.\n\nA loud ending.", "A calm opening.\n\nA loud ending."),
        ("Hmm...\n\nThe plan.", "The plan."),
        ("嗯，也许可以从一个故事开始。", "可以从一个故事开始。"),
        ("让我想想，这篇文章的读者是谁？", "这篇文章的读者是谁？"),
        ("等等，不对，开头应该更短。", "开头应该更短。"),
        ("换个角度来看，读者更关心结局。", "读者更关心结局。"),
        ("这个开头，嗯，不够好。", "这个开头不够好。"),
    ],
)
def test_remove_reflections_rules(text, expected):
    out = remove_reflections(text)
    assert out == expected
    assert find_reflections(out, "en") == [] and find_reflections(out, "zh") == []


@pytest.mark.parametrize(
    "text",
    [
        "She has to sit and wait for news. Wait for the reader to catch up.",  # "wait" as a verb is content
        "苹果、香蕉等等都可以写成诗或者散文。",  # 等等 "etc." and 或者 "or" in running prose
        "The awaited waiter, the hmmingbird and the thematic core.\n\n  Indented, trailing spaces.  \n",
    ],
)
def test_remove_reflections_leaves_other_text_alone(text):
    assert remove_reflections(text) == text


def test_remove_reflections_changes_nothing_else_on_real_prose():
    """Phrases inserted into the bundled prose come out again, and the prose itself is byte for byte the same."""
    openers = ["Hmm, ", "But wait, ", "Let me think. ", "Alternatively, ", "On second thought, "]
    for pair in demo_pairs():
        prose = pair["answer"]
        assert remove_reflections(prose) == prose
        sentences = re.split(r"(?<=\.) (?=[A-Z])", prose)
        inserted = " ".join(
            openers[i % len(openers)] + s[0].lower() + s[1:] if i % 2 == 0 and not s.startswith("I ") else s
            for i, s in enumerate(sentences)
        )
        assert inserted != prose and " ".join(sentences) == prose
        assert remove_reflections(inserted) == prose
