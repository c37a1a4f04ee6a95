"""Text primitives: the thinking splitter's edge cases, the language detector, the comparison units."""

import ast
import re
from pathlib import Path

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


def test_one_cjk_class_decides_the_language_and_the_units():
    """What makes a text Chinese is what is counted one character at a time in it: kana, extension ideographs and
    hangul alike; CJK punctuation and full-width latin letters are neither."""
    for char in ("秋", "㐀", "𠀀", "豈", "カ", "한", "，", "。", "ｈ", "a", "7"):
        counted = units(char * 2, "zh") == [char, char]
        assert (detect_language(char * 3) == "zh") == counted, char
    assert units("，。", "zh") == [] and detect_language("hello，。。。") == "en"


def test_longbench_write_keeps_its_own_narrower_count():
    from reer_hf.evaluation.benchmarks.longbench_write import produced_length

    assert produced_length("秋天") == 2 and produced_length("㐀カ한") == 0  # the official [\u4e00-\u9fff]
    assert len(units("㐀カ한", "zh")) == 3


def tag_literals(source: str) -> list[str]:
    """String constants of ``source`` (docstrings left out) that use a thinking or answer tag as code does: the whole
    string, at its start or end, or next to a line break or a regex escape, with no space in it; prose that names a
    tag (messages, help texts) is left alone."""
    from reer_hf.core.text import ANSWER_MARKERS, THINKING_MARKERS

    tags = [tag for pair in (*THINKING_MARKERS, *ANSWER_MARKERS) for tag in pair]
    pattern = re.compile("|".join(rf"(^|\n){re.escape(t)}|{re.escape(t)}($|\n|\\)" for t in tags))
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        if " " not in node.value and pattern.search(node.value)
    ]


def test_the_thinking_tags_have_one_home():
    """The package spells ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` (and OpenThoughts' markers) in
    reer_hf/core/text.py only; everything else builds on its constants."""
    package = Path(__file__).resolve().parents[2] / "reer_hf"
    found = {
        str(path.relative_to(package)): literals
        for path in sorted(package.rglob("*.py"))
        if path != package / "core" / "text.py" and (literals := tag_literals(path.read_text(encoding="utf-8")))
    }
    assert not found, f"tags spelled outside reer_hf/core/text.py: {found}"
    assert tag_literals('x = f"<think>\\n{z}\\n</think>"\ny = re.compile(r"<think>\\s*$")\n"""<think> doc"""')
    assert not tag_literals('help = "the reply opens `<think>` and never closes it"')
