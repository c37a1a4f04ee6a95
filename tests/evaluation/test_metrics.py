"""The deterministic evaluation metrics: the functions behind them, the same through ``evaluate.load`` of each local
module (no network; slow, since importing ``evaluate`` takes seconds), the run computing them through those modules,
and the evaluation example of recipes/README.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reer_hf.core.reflection import REFLECTION_PHRASES
from reer_hf.evaluation import metrics
from reer_hf.evaluation.benchmarks.longbench_write import length_score, produced_length
from reer_hf.evaluation.text import distinct_n, reflection_rates

THROUGH = ["function", pytest.param("evaluate", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def lb_length():
    return metrics.load("longbench_write_length")


@pytest.fixture(params=THROUGH)
def reflection(request):
    """``reflection_rates``, or the ``reflection_profile`` metric that wraps it."""
    if request.param == "function":
        return reflection_rates
    metric = metrics.load("reflection_profile")
    return lambda texts, langs="auto": metric.compute(predictions=texts, langs=langs)


@pytest.fixture(params=THROUGH)
def distinct(request):
    """``distinct_n``, or the ``distinct_n`` metric that wraps it."""
    if request.param == "function":
        return distinct_n
    metric = metrics.load("distinct_n")
    return lambda texts, **kwargs: metric.compute(predictions=texts, **kwargs)


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_path_of_and_unknown_metric():
    for name in metrics.METRICS:
        assert Path(metrics.path_of(name), f"{name}.py").is_file()
    with pytest.raises(ValueError, match="Unknown metric"):
        metrics.path_of("bleu")


@pytest.mark.slow
def test_longbench_write_length_metric(lb_length):
    predictions, required = [words(160), words(50), "", "秋" * 500 + "。"], [100, 100, 300, 1000]
    out = lb_length.compute(predictions=predictions, references=required)
    assert out["produced_lengths"] == [160, 50, 0, 500]
    assert out["scores"] == pytest.approx([80.0, 50.0, 0.0, 50.0])
    assert out["length_score"] == pytest.approx(45.0)
    # the benchmark's own count and score, item by item
    by_hand = [length_score(x, produced_length(p)) for p, x in zip(predictions, required, strict=True)]
    assert out["scores"] == by_hand


@pytest.mark.slow
def test_longbench_write_length_metric_no_items(lb_length):
    assert lb_length.compute(predictions=[], references=[])["length_score"] == 0.0


def test_reflection_profile_english_and_chinese(reflection):
    en = "Hmm, the story needs a hook. But wait, the waiter awaited orders. Alternatively, open with rain."
    zh = "嗯，先写秋天。苹果、香蕉等等都可以。等等，换个角度写。"
    out = reflection([en, zh], langs="auto")
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


def test_reflection_profile_explicit_languages_and_empty_text(reflection):
    out = reflection(["", "plain prose here"], langs=["en", "en"])
    assert out["per_item"] == [None, 0.0]
    assert out["per_1k"] == 0.0 and out["zh"]["texts"] == 0
    with pytest.raises(ValueError, match="Unsupported language"):
        reflection(["x"], langs="fr")


def test_distinct_n(distinct):
    out = distinct(["The cat, the cat.", "a dog"], max_n=3)
    # unigrams the cat the cat a dog: 4/6; bigrams (the cat)(cat the)(the cat)(a dog): 3/4; trigrams: 2/2
    assert out == pytest.approx({"distinct_1": 4 / 6, "distinct_2": 3 / 4, "distinct_3": 1.0})
    assert distinct(["你好你好"])["distinct_1"] == pytest.approx(0.5)
    assert distinct(["one"], max_n=2) == {"distinct_1": 1.0, "distinct_2": 0.0}


@pytest.mark.slow
def test_recipes_readme_evaluation_example_runs(capsys):
    text = (Path(__file__).resolve().parents[2] / "recipes" / "README.md").read_text()
    section = text[text.index("## Evaluation") :]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    exec(compile(block, "recipes/README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert float(lines[0]) == pytest.approx(100 / 3)
    assert lines[1] == str({"distinct_1": 0.5, "distinct_2": 2 / 3})
    # Hmm / wait / Let me think in 5 words, 嗯 / 换个角度 in 5 characters
    assert float(lines[2]) == pytest.approx(1000 * 5 / 10)


def test_the_run_computes_its_metrics_through_the_evaluate_modules(monkeypatch):
    """results.json's distinct-n, reflection profile and LongBench-Write S_l come from the three local ``evaluate``
    modules, each loaded once per process, and equal the functions behind them."""
    import evaluate

    from reer_hf.evaluation.results import score_benchmark

    loaded = []
    real_load = evaluate.load
    monkeypatch.setattr(evaluate, "load", lambda path, **kw: loaded.append(Path(path).name) or real_load(path, **kw))
    metrics._in_memory.cache_clear()
    answers = ["One two three four.", "Hmm, wait. 秋天来了。"]
    items = [
        {"id": f"lb/{i}", "benchmark": "longbench_write", "task": "all", "lang": "en", "length": n}
        for i, n in enumerate((2, 5))
    ]
    generations = {
        it["id"]: {"status": "ok", "answer": a, "thinking": "Let me think. Wait.", "n_tokens": 9, "error_kind": None}
        for it, a in zip(items, answers, strict=True)
    }
    for _ in range(2):
        scores = score_benchmark("longbench_write", items, generations, None)
    assert sorted(loaded) == sorted(metrics.METRICS)  # each once, for two runs of the scoring
    assert scores["distinct_n"] == distinct_n(answers, max_n=2)
    assert scores["reflection_profile"]["per_1k"] == reflection_rates(["Let me think. Wait."] * 2)["per_1k"]
    expected = [length_score(it["length"], produced_length(a)) for it, a in zip(items, answers, strict=True)]
    assert scores["length_score"] == pytest.approx(sum(expected) / 2)
    assert [v["length_score"] for v in scores["items"].values()] == pytest.approx(expected)
    metrics._in_memory.cache_clear()
