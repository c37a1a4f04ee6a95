"""Public import path of the REER search: ``from reer_hf.search import Searcher, search_features``."""

from reer_hf.synthesis.search import Searcher
from reer_hf.synthesis.trajectory import search_features

__all__ = ["Searcher", "search_features"]
