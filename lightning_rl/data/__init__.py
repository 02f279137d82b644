"""Replay, transition and sequence building, frame storage, collection and offline data
(``lightning_rl.data``: nerveX's "data" module)."""

from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.frames import FrameStore
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd
from lightning_rl.data.nstep import NStepTransitionBuilder
from lightning_rl.data.offline import (
    RandomBatchSampler,
    TransitionDataset,
    collate_transitions,
    collect_dataset,
)
from lightning_rl.data.replay import PrioritizedBuffer, linear_beta
from lightning_rl.data.sequence import SequenceBuilder, sequence_priority
from lightning_rl.data.throttle import SampleInsertRatio

__all__ = [
    "RewardScaler",
    "RunningMeanStd",
    "BackgroundCollection",
    "FrameStore",
    "NStepTransitionBuilder",
    "PrioritizedBuffer",
    "RandomBatchSampler",
    "SampleInsertRatio",
    "SequenceBuilder",
    "TransitionDataset",
    "collate_transitions",
    "collect_dataset",
    "linear_beta",
    "sequence_priority",
]
