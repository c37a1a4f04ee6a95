"""The deterministic evaluation metrics, each loaded through ``evaluate.load`` from its local folder (no network)."""

from __future__ import annotations

import re

import pytest

from reer_hf.core.reflection import REFLECTION_PHRASES
from reer_hf.core.text import detect_language as detect_lang
from reer_hf.evaluation import metrics
from reer_hf.evaluation.text import length_score, produced_length


@pytest.fixture(scope="module")
def lb_length():
    return metrics.load("longbench_write_length")


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_path_of_and_unknown_metric():
    for name in metrics.METRICS:
        assert metrics.path_of(name).endswith(f"{name}")
    with pytest.raises(ValueError, match="Unknown metric"):
        metrics.path_of("bleu")


@pytest.mark.parametrize(
    ("required", "produced", "expected"),
    [
        (100, 100, 100.0),
        (100, 160, 80.0),  # over: 1 - (1.6 - 1) / 3
        (100, 400, 0.0),  # over by 3x: exactly 0
        (100, 1000, 0.0),  # clipped at 0
        (100, 50, 50.0),  # under: 1 - (2 - 1) / 2
        (100, 80, 87.5),  # 1 - (1.25 - 1) / 2
        (100, 25, 0.0),  # clipped at 0
        (100, 0, 0.0),  # empty answer
    ],
)
def test_length_score_hand_computed(required, produced, expected):
    assert length_score(required, produced) == pytest.approx(expected)


def test_length_score_rejects_non_positive_requirement():
    with pytest.raises(ValueError, match="positive"):
        length_score(0, 10)


def test_produced_length_counts_english_words_and_chinese_characters():
    assert produced_length("Hello, world! It's 2024.") == 4  # Hello, world, It, s; numbers are not words
    assert produced_length("你好，世界。") == 4  # CJK characters; punctuation does not count
    assert produced_length("我写了 LongWriter 模型") == 6  # 我写了 + 模型 + one English word
    assert produced_length("") == 0
    assert detect_lang("你好，世界。hello") == "zh"
    assert detect_lang("hello world 你") == "en"


def test_longbench_write_length_metric(lb_length):
    out = lb_length.compute(
        predictions=[words(160), words(50), "", "秋" * 500 + "。"],
        references=[100, 100, 300, 1000],
    )
    assert out["produced_lengths"] == [160, 50, 0, 500]
    assert out["scores"] == pytest.approx([80.0, 50.0, 0.0, 50.0])
    assert out["length_score"] == pytest.approx(45.0)


def test_longbench_write_length_metric_no_items(lb_length):
    assert lb_length.compute(predictions=[], references=[])["length_score"] == 0.0


def test_reflection_profile_english_and_chinese():
    metric = metrics.load("reflection_profile")
    en = "Hmm, the story needs a hook. But wait, the waiter awaited orders. Alternatively, open with rain."
    zh = "嗯，先写秋天。苹果、香蕉等等都可以。等等，换个角度写。"
    out = metric.compute(predictions=[en, zh], langs="auto")
    assert out["langs"] == ["en", "zh"]
    en_units = len(en.replace(",", "").replace(".", "").split())  # 16 words
    assert out["en"]["units"] == en_units == 16
    # "Hmm", "But wait" (counted once, not again as "wait,"), "Alternatively"; "waiter", "awaited" never count
    assert out["en"]["reflections"] == 3
    assert out["en"]["per_1k"] == pytest.approx(3000 / 16)
    fam = REFLECTION_PHRASES["en"]
    assert out["en"]["family_counts"][fam[0]] == 1  # hm+
    assert out["en"]["family_counts"][fam[1]] == 1  # but wait
    assert out["en"]["family_counts"][fam[3]] == 0  # "wait," inside "But wait," is not counted twice
    assert out["en"]["families"][fam[5]] == pytest.approx(1000 / 16)  # alternatively
    # zh: 嗯, the clause-initial 等等, 换个角度; "香蕉等等" (etc.) does not count. Units: the CJK characters.
    zh_chars = sum("\u4e00" <= c <= "\u9fff" for c in zh)
    assert out["zh"]["units"] == zh_chars == 21
    assert out["zh"]["reflections"] == 3
    assert out["zh"]["per_1k"] == pytest.approx(3000 / 21)
    assert sum(out["zh"]["family_counts"].values()) == 3
    assert out["per_1k"] == pytest.approx(6000 / 37)
    assert out["per_item"] == pytest.approx([3000 / 16, 3000 / 21])


def test_reflection_profile_explicit_languages_and_empty_text():
    metric = metrics.load("reflection_profile")
    out = metric.compute(predictions=["", "plain prose here"], langs=["en", "en"])
    assert out["per_item"] == [None, 0.0]
    assert out["per_1k"] == 0.0 and out["zh"]["texts"] == 0
    with pytest.raises(ValueError, match="Unsupported language"):
        metric.compute(predictions=["x"], langs="fr")


def test_distinct_n():
    metric = metrics.load("distinct_n")
    out = metric.compute(predictions=["The cat, the cat.", "a dog"], max_n=3)
    # unigrams the cat the cat a dog: 4/6; bigrams (the cat)(cat the)(the cat)(a dog): 3/4; trigrams: 2/2
    assert out == pytest.approx({"distinct_1": 4 / 6, "distinct_2": 3 / 4, "distinct_3": 1.0})
    assert metric.compute(predictions=["你好你好"])["distinct_1"] == pytest.approx(0.5)
    assert metric.compute(predictions=["one"], max_n=2) == {"distinct_1": 1.0, "distinct_2": 0.0}


def test_recipes_readme_evaluation_example_runs(capsys):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "recipes" / "README.md").read_text()
    section = text[text.index("## Evaluation") :]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    exec(compile(block, "recipes/README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) == pytest.approx(100 / 3)
    assert lines[1] == str({"distinct_1": 0.5, "distinct_2": 2 / 3})
    # Hmm / wait / Let me think in 5 words, 嗯 / 换个角度 in 5 characters
    assert float(lines[2]) == pytest.approx(1000 * 5 / 10)
