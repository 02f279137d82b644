"""The one place that names the keys of every transition batch (a ``TensorDict``).

Shapes below are per item; a batch adds a leading ``(B,)``.
"""

OBS = "obs"  # observation at time t: obs_shape
ACTION = "action"  # action taken at t: () for discrete (int64), (action_dim,) for continuous
REWARD = "reward"  # rewards r_t..r_{t+n-1}: (nstep,) float32, zero after the episode ended
NEXT_OBS = "next_obs"  # observation n steps later (or the final observation of the episode)
TERMINATED = "terminated"  # bool: the episode terminated within the n steps -> no bootstrap
TRUNCATED = "truncated"  # bool (rollouts): the episode was cut (time limit, rollout end) -> bootstrap
STEPS = "steps"  # int64: number of real env steps in the transition, 1..nstep (bootstrap gets gamma**steps)
INDEX = "index"  # int64: storage index of a sampled item (to write priorities back)
WEIGHT = "weight"  # float32: importance-sampling weight of a sampled item

# On-policy rollouts (datamodules.OnPolicyDataModule) add, per step: LOG_PROB (behaviour log-prob of the
# action), VALUE (the critic's estimate at collection), ADVANTAGE and RETURNS (GAE), MASK (False: dropped).
LOG_PROB = "log_prob"  # float32
VALUE = "value"  # float32
ADVANTAGE = "advantage"  # float32
RETURNS = "returns"  # float32

# Sequence items (lightning_rl.data.sequence, recurrent policies) hold the keys of the recorded steps with
# a leading (L,) = (burn_in + seq_len,) time dim. Positions [0, burn_in) are burn-in context, [burn_in, L)
# the training part, so the steps that train are mask[..., burn_in:].
MASK = "mask"  # (L,) bool: position holds a real env step (False: zero padding, or a dropped step)

# Recurrent replay (datamodules.SequenceReplayDataModule) stores each sequence item with these besides its
# per-step OBS, ACTION, REWARD (one reward per step), TERMINATED and MASK, all (L, ...):
RECURRENT_STATE = "recurrent_state"  # state_shape: the actor's recurrent state before the item's first step
FINAL_OBS = "final_obs"  # obs_shape: the observation after the item's last real step (its bootstrap state)

# Multi-agent envs (lightning_rl.envs.multi_agent) pack these into one observation; MultiAgentLayout.unpack
# names them, N agents:
AGENT_OBS = "agent_obs"  # (N, obs_dim) float32: each agent's own observation
GLOBAL_STATE = "global_state"  # (state_dim,) float32: the centralized critic's / mixer's input
ACTION_MASK = "action_mask"  # (N, n_actions) bool: True where an agent may take the action
