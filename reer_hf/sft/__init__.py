"""The SFT stage: REER trajectories (and public reasoning data) to conversations, trained with TRL's ``SFTTrainer``.

:mod:`~reer_hf.sft.data` runs the data pipeline, with the paper's ablations as transforms, on
:mod:`~reer_hf.sft.trajectories` (loading, shapes, conversion to messages) and :mod:`~reer_hf.sft.mixture` (the
public reasoning data and the seeded mix); :mod:`~reer_hf.sft.end_of_turn` makes sure every conversation trains its
end-of-turn token; :mod:`~reer_hf.sft.report` counts what each step kept; :mod:`~reer_hf.sft.train` runs the trainer
and writes the model card; :mod:`~reer_hf.sft.stops` checks that the trained model ends its turn.
"""

from reer_hf.sft.config import SFTScriptArguments

__all__ = ["SFTScriptArguments"]
