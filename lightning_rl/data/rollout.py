"""On-policy rollouts: ``T`` vector steps of the live policy, bootstrapped and turned into GAE advantages."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.contract import RolloutActor
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd, standardize
from lightning_rl.rl_utils import gae
from lightning_rl.rl_utils.bootstrap import next_state_values

__all__ = ["RolloutCollector"]


class RolloutCollector:
    """Collects rollouts of a :class:`~lightning_rl.contract.RolloutActor` and computes their advantages.

    Per vector step the policy's ``collect(obs)`` output is stored (``action``, ``log_prob``, ``value`` and
    any extra per-env tensors, e.g. a recurrent state; an ``env_action`` is what the envs get instead of
    ``action``), and the policy's ``reset_recurrent_state`` is told which envs start a new episode. The
    critic then values every true next observation where a step ended its episode or the rollout (so a
    time-limit truncation bootstraps from its final observation), and GAE gives advantages and returns with
    the policy's ``gamma`` and ``gae_lambda``.

    A step an env manager dropped (a faulted env) is no transition: it gets ``mask`` False and the step
    before it ends its trace there, bootstrapping from the observation the failed action was taken from.

    Args:
        collector: the envs (it counts env steps and episodes).
        obs_stats: running observation statistics to update and standardize with (``None``: raw obs).
        clip_obs: bound of standardized observations.
        reward_scaler: scales rewards by the running std of the discounted return (``None``: raw rewards).
        keep_next_obs: keep ``next_obs`` in the rollout (for learners that bootstrap themselves).
    """

    def __init__(
        self,
        collector: VectorCollector,
        obs_stats: RunningMeanStd | None = None,
        clip_obs: float = 10.0,
        reward_scaler: RewardScaler | None = None,
        keep_next_obs: bool = False,
    ):
        self.collector = collector
        self.obs_stats = obs_stats
        self.clip_obs = clip_obs
        self.reward_scaler = reward_scaler
        self.keep_next_obs = keep_next_obs

    def collect(self, policy: RolloutActor, n_steps: int) -> TensorDict:
        """``n_steps`` vector steps with ``policy``.

        Returns:
            ``(n_steps, E)`` TensorDict: ``obs``, ``action``, ``log_prob``, ``value``, the policy's extra
            keys, ``reward`` (scaled if enabled), ``terminated``, ``truncated`` (also True before a dropped
            step), ``mask``, ``advantage``, ``returns`` and, with ``keep_next_obs``, ``next_obs``.
        """
        steps = [self._step(policy) for _ in range(n_steps)]
        stacked = {key: torch.stack([step[key] for step in steps]) for key in steps[0]}
        rollout = TensorDict(stacked, [n_steps, self.collector.env.num_envs])
        return self._add_advantages(rollout, policy)

    def _step(self, policy: RolloutActor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}

        def act(obs: Tensor) -> Tensor:
            if self.obs_stats is not None:
                self.obs_stats.update(obs)
            out[keys.OBS] = standardize(obs, self.obs_stats, self.clip_obs)
            with torch.no_grad():
                out.update(policy.collect(out[keys.OBS]))
            return out.pop("env_action", out[keys.ACTION])

        step = self.collector.step(act)
        ended = step.terminated | step.truncated | step.dropped
        policy.reset_recurrent_state(ended)
        reward = step.reward if self.reward_scaler is None else self.reward_scaler(step.reward, ended)
        return {
            **out,
            keys.REWARD: reward,
            keys.TERMINATED: step.terminated,
            keys.TRUNCATED: step.truncated,
            keys.NEXT_OBS: standardize(step.next_obs, self.obs_stats, self.clip_obs),
            "dropped": step.dropped,
        }

    def _add_advantages(self, rollout: TensorDict, policy: RolloutActor) -> TensorDict:
        dropped = rollout.pop("dropped")
        terminated, truncated = rollout[keys.TERMINATED], rollout[keys.TRUNCATED].clone()
        truncated[:-1] |= dropped[1:]  # a dropped step is no transition: the trace before it ends there
        with torch.no_grad():
            next_value = next_state_values(
                rollout[keys.VALUE], terminated | truncated, rollout[keys.NEXT_OBS], policy.predict_value
            )
        # Values are (T, E), or (T, E, N) from a multi-agent critic: each agent traces the team reward alone.
        value = rollout[keys.VALUE]
        columns = [_per_agent(x, value.shape) for x in (rollout[keys.REWARD], value, next_value)]
        flags = [_per_agent(x, value.shape) for x in (terminated, truncated)]
        advantage, returns = gae(*columns, *flags, policy.gamma, policy.gae_lambda)
        rollout[keys.ADVANTAGE], rollout[keys.RETURNS] = (
            advantage.view(value.shape),
            returns.view(value.shape),
        )
        rollout[keys.TRUNCATED] = truncated
        rollout[keys.MASK] = ~dropped
        if not self.keep_next_obs:
            del rollout[keys.NEXT_OBS]
        return rollout


def _per_agent(x: Tensor, shape: torch.Size) -> Tensor:
    """A per-env ``(T, E)`` or per-agent ``(T, E, N)`` tensor as GAE's ``(T, E * N)`` columns, one per
    agent (``shape`` is the value's; for ``(T, E)`` values this is the identity)."""
    return x.reshape(*x.shape, *(1,) * (len(shape) - x.dim())).expand(shape).flatten(1)
