"""reer-hf: Reverse-Engineered Reasoning (REER, arXiv 2509.06160) with the Hugging Face stack."""

__version__ = "0.1.0"
