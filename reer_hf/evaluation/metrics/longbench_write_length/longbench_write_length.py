"""LongBench-Write length score S_l (THUDM/LongWriter, Apache-2.0), as an ``evaluate`` metric.

import evaluate
from reer_hf.evaluation.metrics import path_of

metric = evaluate.load(path_of("longbench_write_length"))
metric.compute(predictions=["..."], references=[1000])  # references: the required lengths
"""

import datasets
import evaluate

from reer_hf.evaluation.benchmarks.longbench_write import length_score, produced_length

_DESCRIPTION = """\
LongBench-Write's length score. The produced length y of an answer is its number of CJK characters [\\u4e00-\\u9fff]
plus its number of English words \\b[a-zA-Z]+\\b; with x the required length (English words or Chinese characters),
an item scores 100*max(0, 1 - (y/x - 1)/3) when y > x, else 100*max(0, 1 - (x/y - 1)/2). An empty answer (y = 0)
scores 0 (the original code divides by zero there). S_l is the mean over items.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's answers (without the thinking).
    references (`list` of `int`): the required lengths (the `length` field of LongBench-Write).
Returns:
    length_score (`float`): S_l, the mean item score in [0, 100] (0.0 for no items).
    scores (`list` of `float`): each item's score.
    produced_lengths (`list` of `int`): each answer's produced length.
Examples:
    >>> metric.compute(predictions=["one two three four"], references=[2])["scores"]
    [66.66666666666667]
"""

_CITATION = """\
@article{bai2024longwriter,
  title={LongWriter: Unleashing 10,000+ Word Generation from Long Context LLMs},
  author={Bai, Yushi and Zhang, Jiajie and Lv, Xin and others},
  journal={arXiv preprint arXiv:2408.07055},
  year={2024}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LongbenchWriteLength(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("int64")}
            ),
            codebase_urls=["https://github.com/THUDM/LongWriter/tree/main/evaluation"],
            license="Apache-2.0",
        )

    def _compute(self, predictions, references):
        lengths = [produced_length(p) for p in predictions]
        scores = [length_score(x, y) for x, y in zip(references, lengths, strict=True)]
        return {
            "length_score": sum(scores) / len(scores) if scores else 0.0,
            "scores": scores,
            "produced_lengths": lengths,
        }
