"""Pure tensor RL building blocks: TD losses, return estimators and exploration helpers."""

from lightning_rl.rl_utils.exploration import (
    GaussianNoise,
    NoiseGenerator,
    OUNoise,
    add_action_noise,
    epsilon_greedy,
    epsilon_greedy_schedule,
)
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
    "epsilon_greedy_schedule",
    "epsilon_greedy",
    "NoiseGenerator",
    "GaussianNoise",
    "OUNoise",
    "add_action_noise",
]
