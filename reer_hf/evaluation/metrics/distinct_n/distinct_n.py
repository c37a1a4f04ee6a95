"""Distinct-n (Li et al., 2016) over a set of generations, as an ``evaluate`` metric.

metric = evaluate.load(path_of("distinct_n"))
metric.compute(predictions=answers, max_n=3)  # {"distinct_1": ..., "distinct_2": ..., "distinct_3": ...}
"""

import datasets
import evaluate

from reer_hf.evaluation.text import distinct_n

_DESCRIPTION = """\
Distinct-n: the number of distinct n-grams divided by the number of n-grams, pooled over all predictions (n-grams do
not cross predictions). Tokens are lowercased words without punctuation; each CJK character is one token.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the texts.
    max_n (`int`, default 2): report distinct_1 ... distinct_{max_n}.
Returns:
    distinct_1, distinct_2, ... (`float`): in [0, 1]; 0.0 when there is no n-gram of that order.
"""

_CITATION = """\
@inproceedings{li2016diversity,
  title={A Diversity-Promoting Objective Function for Neural Conversation Models},
  author={Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle={NAACL},
  year={2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DistinctN(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            license="Apache-2.0",
        )

    def _compute(self, predictions, max_n=2):
        return distinct_n(predictions, max_n=max_n)
