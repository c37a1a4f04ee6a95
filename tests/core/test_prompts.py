"""Prompt templates and language detection."""

import pytest

from reer_hf.core.prompts import render


def test_inference_template_shows_the_query_only(tmp_path):
    text = render("inference", "en", query="Write a {story} about <tags> & braces")
    assert text.endswith("Write a {story} about <tags> & braces")
    assert "<think>" in text and "first-person" in text
    zh = render("inference", "zh", query="写一个故事")
    assert zh.endswith("写一个故事") and "第一人称" in zh
    own = tmp_path / "mine.md"
    own.write_text("Q: {{ query }}")
    assert render(str(own), "en", query="x") == "Q: x"


def test_errors_are_clear():
    with pytest.raises(FileNotFoundError, match="available"):
        render("no_such_prompt", "en", query="x")
    with pytest.raises(ValueError, match="Unsupported language"):
        render("inference", "fr", query="x")
    with pytest.raises(Exception, match="query"):
        render("inference", "en")
