"""Replay, transition and sequence building, frame storage, collection and offline data
(``lightning_rl.data``: nerveX's "data" module)."""

from lightning_rl.data.actor_mirror import ActorMirror
from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.collector import CollectCounters, VectorCollector
from lightning_rl.data.frames import FrameStore
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd
from lightning_rl.data.nstep import NStepTransitionBuilder
from lightning_rl.data.offline import (
    RandomBatchSampler,
    TransitionDataset,
    collate_transitions,
    write_dataset,
)
from lightning_rl.data.pipeline import TransitionPipeline
from lightning_rl.data.replay import PrioritizedBuffer
from lightning_rl.data.rollout import RolloutCollector
from lightning_rl.data.sequence import SequenceBuilder, sequence_priority
from lightning_rl.data.throttle import SampleInsertRatio

__all__ = [
    "ActorMirror",
    "BackgroundCollection",
    "CollectCounters",
    "FrameStore",
    "NStepTransitionBuilder",
    "PrioritizedBuffer",
    "RandomBatchSampler",
    "RewardScaler",
    "RolloutCollector",
    "RunningMeanStd",
    "SampleInsertRatio",
    "SequenceBuilder",
    "TransitionDataset",
    "TransitionPipeline",
    "VectorCollector",
    "collate_transitions",
    "write_dataset",
    "sequence_priority",
]
