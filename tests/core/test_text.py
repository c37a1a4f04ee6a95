"""Text primitives: the thinking splitter's edge cases, the language detector, the comparison units."""

import pytest

from reer_hf.core.text import detect_language, split_thinking, strip_thinking, units


def test_language_detection():
    assert detect_language("写一首关于秋天的诗") == "zh"
    assert detect_language("Write a poem about autumn.") == "en"
    assert detect_language("请把这段 English text 改写得更正式一些，谢谢") == "zh"
    assert detect_language("Explain the word 秋 in a sentence about autumn leaves.") == "en"
    assert detect_language("你好，世界。hello") == "zh"
    assert detect_language("hello world 你") == "en"


def test_units():
    assert units("Hello, World! It's a test-case.", "en") == ["hello", "world", "it's", "a", "test", "case"]
    assert units("我爱 Python 3 编程！", "zh") == ["我", "爱", "python", "3", "编", "程"]
    with pytest.raises(ValueError, match="Unsupported language"):
        units("x", "fr")


def test_unfinished_thinking_has_no_answer_and_the_answer_follows_the_last_marker():
    assert split_thinking("  <think>never closed") == ("never closed", "", False)
    assert strip_thinking("<think>never closed") == ""
    assert split_thinking("<think>a</think>b</think>\nThe answer.") == ("a", "The answer.", True)
    assert split_thinking("<answer>\ncut at the limit") == (None, "cut at the limit", True)
    assert strip_thinking("plain") == "plain"
