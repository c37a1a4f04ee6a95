"""Reflection-phrase frequency in the thinking (the paper's reasoning analysis), as an ``evaluate`` metric.

metric = evaluate.load(path_of("reflection_profile"))
metric.compute(predictions=thinking_texts, langs="auto")  # or "en", "zh", or one language per text
"""

import datasets
import evaluate

from reer_hf.evaluation.text import reflection_rates

_DESCRIPTION = """\
How often a text (usually the thinking) uses each self-reflection phrase family of
reer_hf.core.reflection.REFLECTION_PHRASES ("Hmm", "But wait", "Let me reconsider", "Alternatively", ...; "嗯", "等等",
"换个角度", ...). Rates are per 1,000 words for English texts and per 1,000 characters for Chinese ones (each CJK
character is one unit, a latin word or number inside Chinese text also one), pooled over the texts of each language.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the texts.
    langs (`str` or `list` of `str`, default "auto"): "en", "zh", "auto" (detected per text: "zh" when it has more
        CJK characters than English words), or one of these per text.
Returns:
    per_1k (`float`): all reflections per 1,000 units, over all texts.
    en, zh (`dict`): per language: texts, units, reflections, per_1k, families (rate per 1,000 units of each family,
        keyed by its regular expression), family_counts.
    per_item (`list`): each text's rate per 1,000 units (None for a text without units).
    langs (`list` of `str`): the language used for each text.
"""

_CITATION = """\
@article{wang2025reer,
  title={Reverse-Engineered Reasoning for Open-Ended Generation},
  author={Wang, Haozhe and others},
  journal={arXiv preprint arXiv:2509.06160},
  year={2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReflectionProfile(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            license="Apache-2.0",
        )

    def _compute(self, predictions, langs="auto"):
        return reflection_rates(predictions, langs)
