"""Acting with a recurrent policy's per-env states, and the recurrent replay's sequence pipeline:
vector-env steps (with the state each env's actor was in) -> R2D2 sequence items."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.contract import ActMode, RecurrentActor, Rng
from lightning_rl.data.collector import VectorCollector, VectorStep
from lightning_rl.data.sequence import SequenceBuilder, last_real_step

__all__ = ["RecurrentAct", "RecurrentStates", "SequencePipeline", "SequenceStep"]

# obs (E, *obs_shape), states (E, *state_shape) -> actions, states after the step
RecurrentAct = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def where_rows(choose: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """Row ``i`` of ``first`` where ``choose[i]``, else of ``second``. Shapes: choose (E,) bool, first and
    second (E, *state_shape) or broadcastable to it -> (E, *state_shape)"""
    return torch.where(choose.view(-1, *([1] * (max(first.dim(), second.dim()) - 1))), first, second)


class RecurrentStates:
    """One recurrent state per env: :meth:`act` steps them, :meth:`reset` starts episodes afresh.

    What turns a :class:`~lightning_rl.contract.RecurrentActor` into the ``obs -> actions`` callable that
    evaluation rollouts take (``run_episodes(states.act, env, ..., on_done=states.reset)``).
    """

    def __init__(self, policy: RecurrentActor, n_envs: int, mode: ActMode = "eval"):
        self.policy = policy
        self.mode = mode
        self.initial = policy.initial_state(n_envs)  # (E, *state_shape)
        self.state = self.initial.clone()

    def act(self, obs: Tensor, env_steps: int = 0, generator: Rng = None) -> Tensor:
        action, self.state = self.policy.act_recurrent(obs, self.state, self.mode, env_steps, generator)
        return action

    def reset(self, done: Tensor) -> None:
        """Envs where ``done`` ``(E,)`` bool is True start their next episode from the initial state."""
        done = torch.as_tensor(done, device=self.state.device)
        if bool(done.any()):
            self.state = where_rows(done, self.initial, self.state)


class SequenceStep(NamedTuple):
    """One vector step and the recurrent states ``(E, *state_shape)`` its actions were chosen in."""

    step: VectorStep
    state: Tensor


class SequencePipeline:
    """Steps a :class:`VectorCollector` with per-env recurrent states and cuts the steps into sequence
    items (:class:`~lightning_rl.data.sequence.SequenceBuilder`).

    As :class:`~lightning_rl.data.pipeline.TransitionPipeline`, stepping (:meth:`collect`) and building
    (:meth:`build`) are separate, so a collector thread steps outside the lock it shares with the learner.

    Each item (``batch_size [N]``) holds, for its ``L = burn_in + seq_len`` positions, ``OBS``, ``ACTION``,
    ``REWARD`` (one per step), ``TERMINATED`` and ``MASK`` ``(N, L, ...)``, plus ``RECURRENT_STATE`` ``(N,
    *state_shape)``, the state the actor was in before position 0 (the initial state when position 0
    is padding before the episode's start), and ``FINAL_OBS`` ``(N, *obs_shape)``, the observation after
    the item's last real step (the final observation where the episode ended, else the next step's).

    Args:
        collector: the envs.
        initial_state: ``(E, *state_shape)``, the state every episode starts from.
        seq_len, burn_in, overlap: the :class:`SequenceBuilder`'s.
    """

    def __init__(
        self,
        collector: VectorCollector,
        initial_state: Tensor,
        seq_len: int,
        burn_in: int = 0,
        overlap: int = 0,
    ):
        self.collector = collector
        self.builder = SequenceBuilder(collector.env.num_envs, seq_len, burn_in, overlap)
        self.initial_state = initial_state.detach().cpu()
        self.state = self.initial_state.clone()

    def reset(self, seed: int) -> None:
        """New episodes in every env, from the initial state; pending sequences belong to the old ones."""
        self.collector.reset(seed=seed)
        self.builder.reset()
        self.state = self.initial_state.clone()

    def collect(self, act: RecurrentAct) -> SequenceStep:
        """One vector step with ``act``; envs whose episode ended (or whose env failed) restart from the
        initial state."""
        state = self.state
        next_state: list[Tensor] = []

        def act_obs(obs: Tensor) -> Tensor:
            action, after = act(obs, state)
            next_state.append(after.detach().cpu())
            return action

        step = self.collector.step(act_obs)
        done = step.terminated | step.truncated | step.dropped
        self.state = where_rows(done, self.initial_state, next_state[0])
        return SequenceStep(step, state)

    def build(self, collected: SequenceStep) -> TensorDict | None:
        """The sequence items ``[N]`` that the step completes, or ``None``."""
        step = collected.step
        record = TensorDict(
            {
                keys.OBS: step.obs,
                keys.ACTION: step.action,
                keys.REWARD: step.reward,
                keys.TERMINATED: step.terminated,
                keys.NEXT_OBS: step.next_obs,
                keys.RECURRENT_STATE: collected.state,
            },
            batch_size=[step.obs.shape[0]],
        )
        items = self.builder.add(record, step.terminated | step.truncated, dropped=step.dropped)
        if items is None:
            return None
        mask = items[keys.MASK]
        n = mask.shape[0]
        last = last_real_step(mask)
        rows = torch.arange(n)
        return TensorDict(
            {
                keys.OBS: items[keys.OBS],
                keys.ACTION: items[keys.ACTION],
                keys.REWARD: items[keys.REWARD],
                keys.TERMINATED: items[keys.TERMINATED],
                keys.MASK: mask,
                # padding at position 0 (before the episode's start): the episode's initial state
                keys.RECURRENT_STATE: where_rows(
                    mask[:, 0], items[keys.RECURRENT_STATE][:, 0], self.initial_state[0]
                ),
                keys.FINAL_OBS: items[keys.NEXT_OBS][rows, last],
            },
            batch_size=[n],
        )
