"""IMPALA's learner (Espeholt et al., 2018): actor-critic updates on V-trace targets, which correct for
the lag between the policy that collected a trajectory and the one being trained."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.policies.actor_critic import ActorCriticPolicy
from lightning_rl.rl_utils import VTraceData, vtrace_error
from lightning_rl.rl_utils.bootstrap import next_state_values
from lightning_rl.utils.checks import ConfigError, check_positive


class IMPALA(ActorCriticPolicy):
    """Actor-critic on time-major trajectories with V-trace targets and importance-weighted policy
    gradients (``rho``/``c`` clipping).

    Needs an ``OnPolicyDataModule`` with ``minibatch: trajectories`` (minibatches ``(T, b)`` of whole env
    trajectories with their true next observations). The learner recomputes every value with its current
    critic (bootstraps included) and weights the policy gradient by ``min(pg_rho_clip, pi / mu)``, so
    several epochs over one rollout, i.e. a behaviour policy that lags the learner, stay unbiased up to the
    clipping. Steps an env manager dropped carry weight 0.

    Args (besides :class:`~lightning_rl.policies.actor_critic.ActorCriticPolicy`'s, whose ``gae_lambda``
    is V-trace's trace decay here, default 1.0 as in the paper):
        rho_clip, c_clip, pg_rho_clip: V-trace's truncation levels.
    """

    def __init__(
        self,
        rho_clip: float = 1.0,
        c_clip: float = 1.0,
        pg_rho_clip: float = 1.0,
        max_grad_norm: float | None = 40.0,
        lr: float = 6e-4,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.01,
        **kwargs: Any,
    ):
        super().__init__(
            lr=lr, gae_lambda=gae_lambda, ent_coef=ent_coef, max_grad_norm=max_grad_norm, **kwargs
        )
        check_positive(rho_clip=rho_clip, c_clip=c_clip, pg_rho_clip=pg_rho_clip)

    def check_data_source(self, datamodule: Any) -> None:
        super().check_data_source(datamodule)
        if datamodule.minibatch != "trajectories":
            raise ConfigError(
                "IMPALA needs data.minibatch 'trajectories' (time-major chunks for V-trace), "
                f"got {datamodule.minibatch!r}",
                "data.init_args.minibatch",
                f"got {datamodule.minibatch!r} (IMPALA's V-trace needs time-major chunks)",
                "'trajectories'",
            )

    def training_update(self, batch: TensorDict) -> None:
        hp = self.hparams
        dist, value = self.net(batch[keys.OBS])  # (T, b) chunks: the network keeps the leading dims
        with torch.no_grad():
            ended = batch[keys.TERMINATED] | batch[keys.TRUNCATED]
            next_value = next_state_values(value, ended, batch[keys.NEXT_OBS], self.net.value)
        data = VTraceData(
            target_log_prob=dist.log_prob(batch[keys.ACTION]),
            behaviour_log_prob=batch[keys.LOG_PROB],
            entropy=dist.entropy(),
            value=value,
            next_value=next_value,
            reward=batch[keys.REWARD],
            terminated=batch[keys.TERMINATED],
            truncated=batch[keys.TRUNCATED],
            weight=batch[keys.MASK].to(value.dtype),
        )
        losses = vtrace_error(data, self.gamma, self.gae_lambda, hp.rho_clip, hp.c_clip, hp.pg_rho_clip)
        self.apply_update(
            losses,
            lambda: {
                "train/rho_mean": (data.target_log_prob.detach() - data.behaviour_log_prob)
                .exp()
                .mean()
                .item()
            },
        )
