"""Reflection phrases: what counts as one, in English and Chinese, and where one stands in a text."""

import re

import pytest
from testing_utils import PROSE, ZH_PROSE

from reer_hf.core.reflection import REFLECTION_PHRASES, find_reflections, reflection_in_tail, reflection_pattern


@pytest.mark.parametrize(
    "text, found",
    [
        ("Hmm, maybe I should start with the reader.", "Hmm"),
        ("The plan is set. Wait, no, the ending must change.", "Wait"),
        ("But wait, the reader is a child.", "But wait"),
        ("Oh, wait: that breaks the rhythm.", "Oh, wait"),
        ("Let me think about the tone again.", "Let me think"),
        ("Alternatively, I open with a question.", "Alternatively"),
        ("On second thought the title is too long.", "On second thought"),
        ("Actually, no. The middle part drags.", "Actually, no"),
        ("Hold on, is the narrator reliable?", "Hold on"),
        ("The waiter awaited the guests; I hold on to the theme and can't wait to write it", None),
    ],
)
def test_english_reflection_phrases(text, found):
    matches = find_reflections(text, "en")
    assert (matches[0] if matches else None) == found


@pytest.mark.parametrize(
    "text, found",
    [
        ("嗯，也许应该先写读者。", "嗯"),
        ("结构定了。等等，不对，结尾要改。", "等等"),
        ("让我再想想开头。", "让我再想想"),
        ("这里，或者换成一个问题开头。", "或者"),
        ("苹果、香蕉等等都可以写，写成诗或者散文也行，我也许会用第一人称。", None),
    ],
)
def test_chinese_reflection_phrases(text, found):
    matches = find_reflections(text, "zh")
    assert (matches[0] if matches else None) == found


def test_reflection_phrases_are_documented_patterns():
    assert set(REFLECTION_PHRASES) == {"en", "zh"}
    for lang, patterns in REFLECTION_PHRASES.items():
        assert patterns and all(isinstance(re.compile(p), re.Pattern) for p in patterns)
        assert reflection_pattern(lang).flags & re.IGNORECASE
    with pytest.raises(ValueError):
        reflection_pattern("fr")


def test_reflection_in_tail():
    body = PROSE + " " + PROSE
    assert reflection_in_tail("Hmm, maybe the reader is young. " + body, 0.1, "en") is None
    assert reflection_in_tail(body + " Wait, that's a bit too dark.", 0.1, "en") == "Wait"
    assert reflection_in_tail(body + " Then the waiter leaves.", 0.1, "en") is None
    assert reflection_in_tail(body + " Hmm.", 1.0, "en") == "Hmm"
    zh_body = ZH_PROSE * 2
    assert reflection_in_tail("嗯，先想想读者。" + zh_body, 0.1, "zh") is None
    assert reflection_in_tail(zh_body + "等等，结尾还是太仓促了。", 0.1, "zh") == "等等"
    with pytest.raises(ValueError):
        reflection_in_tail("x", 0.0, "en")
