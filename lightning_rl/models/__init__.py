"""Neural networks. They know nothing of RL losses or Lightning."""

from lightning_rl.models.atoc import AgentQCritics, ATOCActor, MultiAgentQAC
from lightning_rl.models.distributions import (
    ActionDist,
    CategoricalDist,
    DiagGaussian,
    SquashedDiagGaussian,
    tanh_log_abs_det_jacobian,
)
from lightning_rl.models.dqn import DQNNet
from lightning_rl.models.heads import DuelingHead, QHead, noisy_layer
from lightning_rl.models.multi_agent import MultiAgentQNet, QMixer, VDNMixer
from lightning_rl.models.multi_agent_ac import COMACritic, COMANet, MultiAgentValueAC, SharedAgentActor
from lightning_rl.models.qac import (
    ActionScaler,
    DeterministicActor,
    EnsembleMLP,
    GaussianActor,
    QCritics,
    QValueAC,
)
from lightning_rl.models.recurrent import DRQN
from lightning_rl.models.value_ac import ValueAC

__all__ = [
    "AgentQCritics",
    "ATOCActor",
    "MultiAgentQAC",
    "ActionDist",
    "ActionScaler",
    "DeterministicActor",
    "EnsembleMLP",
    "GaussianActor",
    "MultiAgentQNet",
    "MultiAgentValueAC",
    "QCritics",
    "QMixer",
    "QValueAC",
    "CategoricalDist",
    "COMACritic",
    "COMANet",
    "DQNNet",
    "DRQN",
    "DiagGaussian",
    "DuelingHead",
    "QHead",
    "SharedAgentActor",
    "noisy_layer",
    "SquashedDiagGaussian",
    "ValueAC",
    "VDNMixer",
    "tanh_log_abs_det_jacobian",
]
