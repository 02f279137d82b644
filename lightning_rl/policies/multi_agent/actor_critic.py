"""On-policy cooperative learners on the ``OnPolicyDataModule`` over a multi-agent env: COMA (Foerster et
al., 2018) and its independent baselines IA2C and IPPO (agents sharing parameters, fed their ids)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tensordict import TensorDict
from torch import nn

from lightning_rl import keys
from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.multi_agent_ac import COMANet, CriticInput, MultiAgentValueAC
from lightning_rl.policies.a2c import A2C
from lightning_rl.policies.actor_critic import ActorCriticPolicy
from lightning_rl.policies.base import RLPolicy
from lightning_rl.policies.ppo import PPO
from lightning_rl.rl_utils import COMAData, coma_error
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_choice

__all__ = ["COMA", "IA2C", "IPPO"]

# ValueAC's options, which the agents' shared discrete-action MLPs do not have: (name, default)
_SINGLE_AGENT_OPTIONS = (
    ("shared_encoder", None),
    ("log_std", "independent"),
    ("log_std_init", 0.0),
    ("squash", False),
)


def _agent_layout(policy: RLPolicy, spec: EnvSpec) -> MultiAgentLayout:
    """The env's layout (discrete actions); an option of the single-agent network that was set is an
    error, not ignored."""
    policy.require_action_type("discrete")
    given = [name for name, default in _SINGLE_AGENT_OPTIONS if policy.hparams[name] != default]
    if given:
        raise ValueError(
            f"{type(policy).__name__}: {', '.join(given)} do not apply to its agents' networks (shared "
            "discrete-action MLPs with separate actor and critic); remove them"
        )
    return MultiAgentLayout.from_dict(spec.multi_agent)


class _AgentValueNets:
    """IA2C's and IPPO's networks: a shared masked actor and a value critic per agent
    (:class:`~lightning_rl.models.multi_agent_ac.MultiAgentValueAC`), built from ``critic``,
    ``hidden_sizes`` and ``activation``."""

    multi_agent = True

    def build_net(self: RLPolicy, spec: EnvSpec) -> nn.Module:
        hp = self.hparams
        return MultiAgentValueAC(_agent_layout(self, spec), tuple(hp.hidden_sizes), hp.activation, hp.critic)


class IA2C(_AgentValueNets, A2C):
    """Independent advantage actor-critics: :class:`~lightning_rl.policies.A2C` for each agent, one
    shared actor and critic (:class:`~lightning_rl.models.multi_agent_ac.MultiAgentValueAC`) fed each
    agent's observation and id, each agent's own GAE trace of the team reward. COMA's baseline.

    Args (besides :class:`~lightning_rl.policies.A2C`'s network and training arguments):
        critic: ``"independent"`` (``V(o_i, i)``) or ``"centralized"`` (``V(s, i)``, the global state).
    """

    def __init__(
        self, critic: CriticInput = "independent", hidden_sizes: Sequence[int] = (64, 64), **kwargs: Any
    ):
        check_choice("critic", critic, ("independent", "centralized"))
        super().__init__(hidden_sizes=hidden_sizes, **kwargs)


class IPPO(_AgentValueNets, PPO):
    """Independent PPO (de Witt et al., 2020): :class:`~lightning_rl.policies.PPO`'s clipped surrogate
    per agent (each agent's own ratio and advantage) on a shared actor and critic fed each agent's
    observation and id; with ``critic: centralized`` the critic reads the global state (MAPPO, Yu et al.,
    2022).

    Args (besides :class:`~lightning_rl.policies.PPO`'s):
        critic: ``"independent"`` or ``"centralized"``.
    """

    def __init__(
        self, critic: CriticInput = "independent", hidden_sizes: Sequence[int] = (64, 64), **kwargs: Any
    ):
        check_choice("critic", critic, ("independent", "centralized"))
        super().__init__(hidden_sizes=hidden_sizes, **kwargs)


class COMA(ActorCriticPolicy):
    """Counterfactual multi-agent policy gradients: decentralized actors (one shared
    :class:`~lightning_rl.models.multi_agent_ac.SharedAgentActor`, agent ids, action masks) trained with
    a centralized critic's counterfactual advantage ``Q(s, u) - sum_a pi(a) Q(s, (u_{-i}, a))``
    (:func:`~lightning_rl.rl_utils.coma_error`).

    The critic (:class:`~lightning_rl.models.multi_agent_ac.COMACritic`) learns ``Q(s, u)`` of the taken
    joint actions from TD(lambda) targets: the collector stores each step's ``Q(s, u)`` as its value, so
    the rollout's GAE returns with ``gae_lambda`` are those targets, computed with the critic of the
    rollout's start (COMA's target critic, refreshed every rollout). Pair it with an
    ``OnPolicyDataModule`` with ``n_epochs: 1`` and ``batch_size`` the whole rollout (COMA is on-policy).

    Args (besides :class:`~lightning_rl.policies.actor_critic.ActorCriticPolicy`'s training arguments):
        hidden_sizes: the actor's MLP widths.
        critic_hidden_sizes: the critic's MLP widths.
        activation: ``"relu"`` or ``"tanh"`` for both.
    """

    multi_agent = True

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (64, 64),
        critic_hidden_sizes: Sequence[int] = (128, 128),
        activation: Literal["tanh", "relu"] = "relu",
        lr: float = 5e-4,
        gae_lambda: float = 0.8,
        vf_coef: float = 1.0,
        ent_coef: float = 0.01,
        **kwargs: Any,
    ):
        super().__init__(
            hidden_sizes=hidden_sizes,
            activation=activation,
            lr=lr,
            gae_lambda=gae_lambda,
            vf_coef=vf_coef,
            ent_coef=ent_coef,
            **kwargs,
        )

    def build_net(self, spec: EnvSpec) -> nn.Module:
        hp = self.hparams
        layout = _agent_layout(self, spec)
        return COMANet(layout, tuple(hp.hidden_sizes), tuple(hp.critic_hidden_sizes), hp.activation)

    def training_update(self, batch: TensorDict) -> None:
        """Batch: obs (B, size), action (B, N), returns (B, N) (the TD(lambda) targets of ``Q(s, u)``)."""
        obs, action = batch[keys.OBS], batch[keys.ACTION]
        logits = self.net.actor(obs).logits
        losses = coma_error(COMAData(logits, action, self.net.critic(obs, action), batch[keys.RETURNS]))
        self.apply_update(losses)
