"""Pure tensor RL building blocks: TD losses, return estimators and exploration helpers."""

from lightning_rl.rl_utils.a2c import A2CData, A2CLoss, a2c_error
from lightning_rl.rl_utils.advantage import GAEReturns, gae
from lightning_rl.rl_utils.exploration import (
    GaussianNoise,
    NoiseGenerator,
    OUNoise,
    add_action_noise,
    epsilon_greedy,
)
from lightning_rl.rl_utils.ppo import PPOData, PPOInfo, PPOLoss, ppo_error
from lightning_rl.rl_utils.td import (
    DistNStepData,
    QNStepData,
    QOneStepData,
    TDLambdaData,
    VNStepData,
    VOneStepData,
    categorical_projection,
    cql_penalty,
    dist_nstep_td_error,
    generalized_lambda_returns,
    q_1step_td_error,
    q_nstep_td_error,
    q_nstep_td_error_with_rescale,
    td_lambda_error,
    v_1step_td_error,
    v_nstep_td_error,
    value_inv_transform,
    value_transform,
)
from lightning_rl.rl_utils.upgo import upgo_loss, upgo_returns
from lightning_rl.rl_utils.vtrace import VTraceData, VTraceLoss, VTraceReturns, vtrace, vtrace_error

__all__ = [
    # td
    "QOneStepData",
    "QNStepData",
    "VOneStepData",
    "VNStepData",
    "TDLambdaData",
    "DistNStepData",
    "q_1step_td_error",
    "q_nstep_td_error",
    "q_nstep_td_error_with_rescale",
    "cql_penalty",
    "v_1step_td_error",
    "v_nstep_td_error",
    "value_transform",
    "value_inv_transform",
    "generalized_lambda_returns",
    "td_lambda_error",
    "categorical_projection",
    "dist_nstep_td_error",
    # exploration
    "epsilon_greedy",
    "NoiseGenerator",
    "GaussianNoise",
    "OUNoise",
    "add_action_noise",
    # advantage
    "GAEReturns",
    "gae",
    # ppo
    "PPOData",
    "PPOLoss",
    "PPOInfo",
    "ppo_error",
    # a2c
    "A2CData",
    "A2CLoss",
    "a2c_error",
    # vtrace
    "VTraceReturns",
    "VTraceData",
    "VTraceLoss",
    "vtrace",
    "vtrace_error",
    # upgo
    "upgo_returns",
    "upgo_loss",
]
