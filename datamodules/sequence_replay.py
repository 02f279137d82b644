"""Env-backed DataModule for recurrent off-policy methods (R2D2): sequences with stored recurrent states."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from lightning_rl import keys
from lightning_rl.contract import RecurrentActor
from lightning_rl.data.recurrent import RecurrentAct, SequencePipeline
from lightning_rl.datamodules.off_policy import OffPolicyDataModule
from lightning_rl.utils.checks import ConfigError, check_int


class SequenceReplayDataModule(OffPolicyDataModule):
    """R2D2's recurrent replay (Kapturowski et al., 2019): the envs are stepped by a recurrent policy
    (one state per env, reset at episode starts), the steps are cut into overlapping fixed-length
    sequences, and each sequence is one replay item with the state its actor started it in.

    An item covers ``L = burn_in + seq_len`` steps of one episode (``lightning_rl.keys``: ``OBS``,
    ``ACTION``, ``REWARD``, ``TERMINATED``, ``MASK`` ``(L, ...)``, ``RECURRENT_STATE`` and ``FINAL_OBS``;
    see :class:`~lightning_rl.data.recurrent.SequencePipeline`). The policy unrolls from the stored state
    over the ``burn_in`` positions without training on them (they refresh the stale stored state), then
    trains on the ``seq_len`` positions with n-step targets taken within the sequence
    (:attr:`nstep`). Consecutive training parts of an episode share ``overlap`` steps; an episode's last
    part is padded. Priorities are per sequence (the policy's ``eta * max + (1 - eta) * mean`` of its
    TD errors).

    Everything else is :class:`OffPolicyDataModule`'s, in sequence units where it counts items:
    ``buffer_size`` and ``batch_size`` are sequences; ``learning_starts``, ``train_freq`` and
    ``max_env_steps`` are env steps; prioritized replay, ``max_use``, ``max_staleness``, async collection,
    memmap storage, checkpointing and multi-rank replay work as there. There is no ``frame_store`` (an
    item keeps its observations; uint8 ones are lz4-compressed in checkpoints).

    Args (besides :class:`OffPolicyDataModule`'s):
        seq_len: training positions per item.
        burn_in: positions before them that only warm up the recurrent state.
        overlap: steps shared by consecutive training parts of an episode, in ``[0, seq_len)``.
    """

    policy_protocol = RecurrentActor
    policy_hint = "use a recurrent policy (R2D2)"

    def __init__(self, seq_len: int = 40, burn_in: int = 20, overlap: int = 20, **kwargs: Any):
        check_int("seq_len", seq_len, 1)
        check_int("burn_in", burn_in, 0)
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < seq_len:
            raise ConfigError(
                f"overlap must be an int in [0, seq_len={seq_len}), got {overlap!r}",
                "overlap",
                f"got {overlap!r}",
                f"an int in [0, {seq_len})",
            )
        super().__init__(frame_store=False, **kwargs)
        if self.ray_settings is not None:  # remote actors ship n-step transitions, not recurrent sequences
            problem = "got 'ray' (recurrent sequence replay collects locally)"
            raise ConfigError(f"collection: {problem}", "collection", problem, "'local'")
        self.burn_in = burn_in
        self.nstep = self.hparams.nstep
        if self._compress_keys:
            self._compress_keys = (keys.OBS, keys.FINAL_OBS)
        # Sampling starts once every rank surely holds a batch, by a bound that needs no collective: each
        # env emits an item at least every seq_len steps (a part completes, or its episode ends sooner).
        self._min_local_steps = seq_len * math.ceil(self.hparams.batch_size / self.n_envs) * self.n_envs

    def build_pipeline(self, policy: RecurrentActor) -> SequencePipeline:
        hp = self.hparams
        return SequencePipeline(
            self.collector, policy.initial_state(self.n_envs), hp.seq_len, hp.burn_in, hp.overlap
        )

    def act_fn(self, policy: RecurrentActor) -> RecurrentAct:
        def act(obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
            return policy.act_recurrent(obs, state, "collect", self.env_steps, self.generator)

        return act
