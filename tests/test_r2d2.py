"""R2D2: the sequence loss against a step-by-step unroll computed by hand, acting with recurrent states,
the sequence pipeline on real envs, the contract with its DataModule, and runs from the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_utils import MASKED_R2D2, REPO, short_run_args
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.contract import ContractError, RecurrentActor
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.recurrent import RecurrentStates, SequencePipeline
from lightning_rl.datamodules import OffPolicyDataModule, SequenceReplayDataModule
from lightning_rl.envs import make_vector_env
from lightning_rl.policies import DQN, R2D2
from lightning_rl.rl_utils import value_inv_transform, value_transform

R2D2_CONFIG = str(REPO / "configs" / "cartpole_r2d2.yaml")
SPEC = {
    "env_id": "CartPole-v1",
    "obs_shape": [3],
    "obs_dtype": "float32",
    "action_type": "discrete",
    "n_actions": 2,
}
BURN_IN, SEQ_LEN, NSTEP, GAMMA = 2, 3, 2, 0.9


def make(**kwargs) -> R2D2:
    torch.manual_seed(0)
    return R2D2(env_spec=SPEC, hidden_sizes=(8,), lstm_size=5, gamma=GAMMA, **kwargs)


def sequence_batch() -> TensorDict:
    """Row 0: five real steps cut at the item's end; row 1: front padding, an episode starting at position 1
    and terminating at position 3."""
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor([[True] * 5, [False, True, True, True, False]])
    return TensorDict(
        {
            keys.OBS: torch.randn(2, 5, 3, generator=g) * mask.unsqueeze(-1),
            keys.ACTION: torch.randint(0, 2, (2, 5), generator=g) * mask,
            keys.REWARD: torch.rand(2, 5, generator=g) * mask,
            keys.TERMINATED: torch.tensor([[False] * 5, [False, False, False, True, False]]),
            keys.MASK: mask,
            keys.RECURRENT_STATE: torch.stack([torch.randn(2, 5, generator=g), torch.zeros(2, 5)]),
            keys.FINAL_OBS: torch.randn(2, 3, generator=g),
            keys.WEIGHT: torch.tensor([1.0, 0.5]),
        },
        batch_size=[2],
    )


def unroll_by_hand(net, batch, row):
    """Q at every real position and at the state after the last one, stepping one step at a time."""
    mask, state = batch[keys.MASK][row], batch[keys.RECURRENT_STATE][row : row + 1]
    q = {}
    for p in range(5):
        if mask[p] and p > 0 and not mask[p - 1]:
            state = torch.zeros_like(state)  # the episode starts here
        q[p], state = net.step(batch[keys.OBS][row, p : p + 1], state)
    last = max(p for p in range(5) if mask[p])
    q[last + 1], _ = net.step(batch[keys.FINAL_OBS][row : row + 1], state)
    return {p: v[0] for p, v in q.items()}, last


@pytest.mark.parametrize("value_rescale", [True, False])
def test_sequence_loss_matches_a_step_by_step_unroll_and_nstep_targets_by_hand(monkeypatch, value_rescale):
    policy = make(value_rescale=value_rescale, loss_type="mse")
    with torch.no_grad():
        for param in policy.target_net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    monkeypatch.setattr(R2D2, "data", property(lambda self: SimpleNamespace(burn_in=BURN_IN, nstep=NSTEP)))
    batch = sequence_batch()
    q_real, loss, priority = policy.td_loss(batch)

    h = (lambda x: value_transform(x, 1e-3)) if value_rescale else (lambda x: x)
    h_inv = (lambda x: value_inv_transform(x, 1e-3)) if value_rescale else (lambda x: x)
    errors, weights, expected_priority, predictions = [], [], [], []
    with torch.no_grad():
        for row in range(2):
            online, last = unroll_by_hand(policy.net, batch, row)
            target, _ = unroll_by_hand(policy.target_net, batch, row)
            row_td = []
            for t in range(BURN_IN, 5):
                if not batch[keys.MASK][row, t]:
                    continue
                m = min(NSTEP, last - t + 1)
                j = t + m - 1
                ret = sum(GAMMA**k * batch[keys.REWARD][row, t + k] for k in range(m))
                if not batch[keys.TERMINATED][row, j]:
                    ret = ret + GAMMA**m * h_inv(target[j + 1][online[j + 1].argmax()])
                q_taken = online[t][batch[keys.ACTION][row, t]]
                row_td.append(h(ret) - q_taken)
                predictions.append(online[t])
                weights.append(batch[keys.WEIGHT][row])
            row_td = torch.stack(row_td).abs()
            errors.append(row_td)
            expected_priority.append(0.9 * row_td.max() + 0.1 * row_td.mean())
    all_td = torch.cat(errors)
    assert torch.allclose(priority, torch.stack(expected_priority), atol=1e-5)
    assert torch.allclose(loss, (torch.stack(weights) * all_td**2).mean(), atol=1e-5)
    assert torch.allclose(q_real, torch.stack(predictions), atol=1e-5)


def test_burn_in_positions_get_no_gradient(monkeypatch):
    policy = make()
    monkeypatch.setattr(R2D2, "data", property(lambda self: SimpleNamespace(burn_in=BURN_IN, nstep=NSTEP)))
    batch = sequence_batch()
    batch[keys.OBS].requires_grad_(True)
    policy.td_loss(batch)[1].backward()
    grad = batch[keys.OBS].grad
    assert grad[:, :BURN_IN].abs().sum() == 0 and grad[0, BURN_IN:].abs().sum() > 0


def test_acting_needs_a_state_and_eval_is_greedy():
    policy = make()
    assert isinstance(policy, RecurrentActor)
    with pytest.raises(TypeError, match="act_recurrent"):
        policy.act(torch.zeros(2, 3))
    obs, state = torch.randn(4, 3), policy.initial_state(4)
    action, after = policy.act_recurrent(obs, state, mode="eval")
    q, expected_state = policy.net.step(obs, state)
    assert torch.equal(action, q.argmax(-1)) and torch.allclose(after, expected_state)
    random = policy.act_recurrent(
        obs.repeat(64, 1), policy.initial_state(256), "collect", 0, torch.Generator()
    )[0]
    assert 0.3 < (random == 1).float().mean() < 0.7  # epsilon 1 at env step 0


def test_recurrent_states_reset_only_the_envs_whose_episode_ended():
    policy = make()
    states = RecurrentStates(policy, 3)
    states.act(torch.randn(3, 3))
    assert (states.state != 0).any(-1).any(-1).all()
    states.reset(torch.tensor([False, True, False]))
    assert torch.equal(states.state[1], torch.zeros(2, 5)) and (states.state[0] != 0).any()


class CounterEnv(gym.Env):
    """Observation: the episode's step count; episodes of 4 to 9 steps (terminated, or truncated at 7)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(4, 10))
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([float(self.t)], np.float32)
        return obs, 1.0, self.t == self.length, self.t == 7 and self.length > 7, {}


class CountingActor:
    """A fake recurrent actor whose state counts the steps of the current episode."""

    def act(self, obs, state):
        return torch.zeros(len(obs), dtype=torch.int64), state + 1


def test_sequence_pipeline_stores_the_start_state_and_the_final_observation():
    env = make_vector_env(lambda: gym.wrappers.RecordEpisodeStatistics(CounterEnv()), n_envs=3)
    pipeline = SequencePipeline(VectorCollector(env), torch.zeros(3, 1), seq_len=4, burn_in=2, overlap=2)
    pipeline.reset(seed=0)
    items = [pipeline.build(pipeline.collect(CountingActor().act)) for _ in range(80)]
    items = torch.cat([item for item in items if item is not None])
    assert items[keys.OBS].shape[1:] == (6, 1) and items[keys.FINAL_OBS].shape[1:] == (1,)
    for item in items:
        mask, position = item[keys.MASK], item[keys.OBS][:, 0]  # obs = the step's episode position
        real = mask.nonzero().squeeze(1)
        first, last = int(real[0]), int(real[-1])
        assert torch.equal(position[real], position[first] + torch.arange(len(real)))  # one episode, in order
        # the state before position 0: the episode's step count there (0 when it is padding)
        start_count = position[0] if mask[0] else 0.0
        assert item[keys.RECURRENT_STATE].item() == start_count
        assert item[keys.FINAL_OBS].item() == position[last] + 1  # the obs the last real step led to
        assert not item[keys.TERMINATED][:last].any()
    assert items[keys.TERMINATED].any() and (~items[keys.MASK][:, 0]).any()
    env.close()


def test_contract_pairs_r2d2_only_with_the_sequence_replay():
    cartpole = {**SPEC, "obs_shape": [4]}
    with pytest.raises(ContractError, match="SequenceSource .*lacks burn_in"):
        R2D2(env_spec=cartpole).check_data_source(OffPolicyDataModule(env_id="CartPole-v1"))
    with pytest.raises(ContractError, match="RecurrentActor .*lacks initial_state"):
        SequenceReplayDataModule(env_id="CartPole-v1").check_policy(DQN(env_spec=cartpole))


@pytest.mark.parametrize("config", [R2D2_CONFIG, MASKED_R2D2], ids=["cartpole", "masked"])
def test_configs_train_and_evaluate_from_the_cli(tmp_path, config):
    cli = RLCLI(
        args=short_run_args(tmp_path, "--data.init_args.learning_starts=600", max_steps=20, config=config)
    )
    assert cli.model.train_iter == 20
    buffer = cli.datamodule.buffer
    assert len(buffer) > 0 and buffer.get(torch.arange(1))[keys.OBS].shape[1] == 30  # burn-in 10 + 20
    assert cli.result["eval_return_mean"] is not None  # evaluated with one recurrent state per eval env


def test_async_collection_trains(tmp_path):
    cli = RLCLI(
        args=short_run_args(
            tmp_path,
            "--data.init_args.async_collection=true",
            "--data.init_args.learning_starts=600",
            max_steps=20,
            config=MASKED_R2D2,
        )
    )
    assert cli.model.train_iter == 20
