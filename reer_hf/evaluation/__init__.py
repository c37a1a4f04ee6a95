"""The evaluation stage: a model on LongBench-Write, HelloBench and WritingBench, judged by an LLM behind any
OpenAI-compatible endpoint, reported in the paper's table (``recipes/eval.py``).

:mod:`~reer_hf.evaluation.benchmarks` holds one module per benchmark behind a registry; :mod:`~.run` sequences the
stages: :mod:`~.generate`, :mod:`~.judge` (requests and records in :mod:`~.judgement`, the thinking's
:mod:`~.reasoning` profile) and :mod:`~.report` with its :mod:`~.plots`; :mod:`~.results` scores each benchmark,
:mod:`~.metrics` holds the deterministic metrics as ``evaluate`` modules, :mod:`~.config` the options.
"""
