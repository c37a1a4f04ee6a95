"""Evaluation (issue #6): deterministic metrics (``metrics``, ``text``), the LLM judge client (``judge``) and benchmark
scoring (``benchmarks``). Scoring rules: ``BENCHMARKS.md``."""
