"""The SFT stage: REER trajectories (and public reasoning data) to conversations, trained with TRL's ``SFTTrainer``.

:mod:`~reer_hf.sft.data` loads and converts the data, with the paper's ablations as transforms;
:mod:`~reer_hf.sft.report` counts what each step kept; :mod:`~reer_hf.sft.train` runs the trainer and writes the card.
"""

from reer_hf.sft.config import SFTScriptArguments

__all__ = ["SFTScriptArguments"]
