"""The shared core: what every stage needs and nothing stage-specific.

Modules here import nothing from the stages (``scoring``, ``synthesis``, ``sft``, ``evaluation``), so any stage can use
them without an import cycle: tags and text (:mod:`~reer_hf.core.text`), reflection phrases
(:mod:`~reer_hf.core.reflection`), the conversation format (:mod:`~reer_hf.core.formats`), segmentation
(:mod:`~reer_hf.core.segment`), prompt templates (:mod:`~reer_hf.core.prompts`), query/answer pairs
(:mod:`~reer_hf.core.data`), model references and the demo model (:mod:`~reer_hf.core.models`), the OpenAI-compatible
endpoint (:mod:`~reer_hf.core.endpoint`), option metadata (:mod:`~reer_hf.core.options`), the paper's numbers
(:mod:`~reer_hf.core.paper`), the pinned upstream sources (:mod:`~reer_hf.core.official`), the cache folder
(:mod:`~reer_hf.core.cache`) and the Hub cards (:mod:`~reer_hf.core.cards`).
"""
