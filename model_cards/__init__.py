"""Jinja templates of the dataset and model cards, installed as ``reer_hf.model_cards`` (see ``pyproject.toml``)."""
