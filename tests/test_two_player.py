"""Two-player games and action masks: TwoPlayerEnv's seats, rewards and results; masked action selection in
ValueAC (PPO/A2C/IMPALA) and DQN; the config errors of policies and DataModules that cannot play them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_rl.datamodules import OffPolicyDataModule, OnPolicyDataModule
from lightning_rl.envs import OpponentPool, RandomOpponent, TwoPlayerEnv, play_games
from lightning_rl.envs.two_player import GameResult, aec_game_factory
from lightning_rl.envs.vector import probe_env_spec, resolve_env_factory
from lightning_rl.models import ValueAC
from lightning_rl.policies import DQN, PPO, Rainbow
from lightning_rl.rl_utils import epsilon_greedy
from lightning_rl.torch_utils import BoardCNNEncoder, mask_illegal, split_action_mask
from lightning_rl.utils.checks import ConfigError

TICTACTOE = "tictactoe_v3"


def tictactoe_spec() -> dict:
    return probe_env_spec(*resolve_env_factory(TICTACTOE, None)).to_dict()


def play_out(env: TwoPlayerEnv, seed: int | None = None, move=None) -> tuple[float, list[float]]:
    """One game with ``move(obs)`` (default: the lowest legal move); ``(return, rewards)``."""
    obs, _ = env.reset(seed=seed)
    rewards, done = [], False
    while not done:
        legal = np.flatnonzero(obs[-env.n_actions :] > 0.5)
        action = legal[0] if move is None else move(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        done = terminated or truncated
    return sum(rewards), rewards


# --- the env -----------------------------------------------------------------------------------------
def test_the_spec_of_a_game_id_has_masks_and_two_players():
    spec = tictactoe_spec()
    # tic-tac-toe observes a 3x3x2 board: 18 features, then its 9 moves' mask
    assert spec["obs_shape"] == [27] and spec["n_actions"] == 9
    assert spec["action_mask"] and spec["two_player"] and spec["action_type"] == "discrete"
    assert spec["board_shape"] == [3, 3, 2]  # what encoder: board_cnn convolves over
    cartpole = probe_env_spec(*resolve_env_factory("CartPole-v1", None))
    assert not cartpole.action_mask and cartpole.board_shape == ()


def test_the_learners_seat_alternates_and_the_reward_is_its_own():
    env, pool = TwoPlayerEnv(TICTACTOE), OpponentPool(seed=0)
    env.attach(pool)
    seats, returns = [], []
    for game in range(6):
        ret, rewards = play_out(env, seed=3 if game == 0 else None)
        seats.append(env.seat)
        returns.append(ret)
        assert all(r == 0 for r in rewards[:-1]) and rewards[-1] in (-1.0, 0.0, 1.0)
    assert seats[1::2] == [1 - seats[0]] * 3 and seats[::2] == [seats[0]] * 3
    results = pool.drain()
    outcomes = {1.0: "win", 0.0: "draw", -1.0: "loss"}
    assert results == [GameResult("random", outcomes[r], s) for r, s in zip(returns, seats, strict=True)]
    assert pool.drain() == []


def test_the_first_seat_comes_from_the_seed():
    seats = set()
    for seed in range(8):
        env = TwoPlayerEnv(TICTACTOE)
        env.reset(seed=seed)
        seats.add(env.seat)
        again = TwoPlayerEnv(TICTACTOE)
        again.reset(seed=seed)
        assert again.seat == env.seat
    assert seats == {0, 1}


def test_from_the_second_seat_the_opponent_has_opened():
    env = TwoPlayerEnv(TICTACTOE)
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        legal = obs[-9:]
        assert legal.sum() == (9 if env.seat == 0 else 8)
        assert obs[:18].sum() == (0 if env.seat == 0 else 1)  # the board holds the opener's mark


def test_an_illegal_move_loses_the_game():
    env = TwoPlayerEnv(TICTACTOE)
    obs, _ = env.reset(seed=0)
    while env.seat != 1:
        obs, _ = env.reset()
    taken = int(np.flatnonzero(obs[-9:] < 0.5)[0])
    _, reward, terminated, _, _ = env.step(taken)
    assert terminated and reward == -1.0


def test_opponents_come_from_the_pools_matchmaking():
    env, pool = TwoPlayerEnv(TICTACTOE), OpponentPool(seed=0)
    env.attach(pool)
    calls = []

    def lowest_legal(obs):
        calls.append(obs.shape)
        _, legal = split_action_mask(obs, 9)
        return legal.float().argmax(-1)

    pool.set_matchmaking(lambda: "lowest", {"lowest": lowest_legal})
    for game in range(4):
        play_out(env, seed=game)
    assert calls and all(shape == (1, 27) for shape in calls)
    assert {r.opponent for r in pool.drain()} == {"lowest"}
    pool.set_matchmaking(lambda: "nobody", {})
    with pytest.raises(KeyError, match="nobody"):
        env.reset()


def lowest_legal_move(obs: torch.Tensor) -> torch.Tensor:
    """An :data:`Opponent` playing the lowest legal move of each packed tic-tac-toe observation."""
    return (obs[:, -9:] > 0.5).to(torch.int64).argmax(dim=1)


def test_play_games_alternates_seats_and_reports_the_players_results():
    # Both sides playing their lowest legal move: the first seat takes 0, 2, 4, 6 and wins on the diagonal.
    results = play_games(lowest_legal_move, TICTACTOE, 6, opponent=lowest_legal_move, seed=3)
    assert [r.seat for r in results] in ([0, 1] * 3, [1, 0] * 3)
    assert all(r.outcome == ("win" if r.seat == 0 else "loss") and r.opponent == "opponent" for r in results)
    against_random = play_games(lowest_legal_move, TICTACTOE, 20, seed=0)
    assert len(against_random) == 20 and {r.opponent for r in against_random} == {"random"}
    assert {r.outcome for r in against_random} >= {"win", "loss"}


def test_game_ids_modules_and_functions_resolve_and_others_are_refused():
    # a module name and PettingZoo's registry id are the same game; so is a module of one's own
    assert aec_game_factory(TICTACTOE).args == aec_game_factory("classic/tictactoe-v3").args
    custom = TwoPlayerEnv("pettingzoo.classic.tictactoe.tictactoe:env")
    assert custom.observation_space == TwoPlayerEnv(TICTACTOE).observation_space
    with pytest.raises(ValueError, match="no PettingZoo AEC game.*pprint_registry"):
        aec_game_factory("chess_on_mars_v0")
    with pytest.raises(ValueError, match="unknown .* id 'chess_on_mars_v0'.*pettingzoo.pprint_registry"):
        resolve_env_factory("chess_on_mars_v0", None)


# --- masks -------------------------------------------------------------------------------------------
def test_split_action_mask_and_the_all_false_row():
    obs = torch.tensor([[5.0, 6.0, 1.0, 0.0, 1.0], [7.0, 8.0, 0.0, 0.0, 0.0]])
    features, legal = split_action_mask(obs, 3)
    assert torch.equal(features, obs[:, :2])
    assert legal.tolist() == [[True, False, True], [True, True, True]]  # a finished game: all legal
    q = mask_illegal(torch.tensor([[1.0, 9.0, 2.0]]), legal[:1])
    assert q.argmax(-1).item() == 2 and torch.isfinite(q).all() and (q * 0).eq(0).all()


def test_epsilon_greedy_explores_among_legal_actions_only():
    q = torch.zeros(2000, 4)
    legal = torch.tensor([False, True, False, True]).expand(2000, 4)
    actions = epsilon_greedy(mask_illegal(q, legal), 1.0, torch.Generator().manual_seed(0), legal)
    assert set(actions.tolist()) == {1, 3}
    counts = torch.bincount(RandomOpponent(4, torch.Generator().manual_seed(1))(_packed(legal)), minlength=4)
    assert counts[0] == counts[2] == 0 and abs(int(counts[1]) - 1000) < 120


def _packed(legal: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(legal.shape[0], 2), legal.float()], dim=-1)


def test_the_masked_categorical_gives_illegal_moves_probability_zero():
    spec = tictactoe_spec()
    obs = torch.tensor(np.stack([TwoPlayerEnv(TICTACTOE).reset(seed=s)[0] for s in range(6)]))
    legal = obs[:, -9:] > 0.5
    assert not legal.all()  # some games start from the second seat, one square taken
    dist, value = ValueAC.from_spec(spec, hidden_sizes=[16])(obs)
    assert value.shape == (6,) and torch.all(dist.probs[~legal] == 0)
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(6))
    for encoder in ("auto", "board_cnn"):  # the board encoder sees the planes, the mask still applies
        ppo = PPO(env_spec=spec, hidden_sizes=[16], encoder=encoder)
        generator = torch.Generator().manual_seed(0)
        actions = torch.stack([ppo.act(obs, mode="collect", generator=generator) for _ in range(50)], dim=1)
        assert legal.gather(1, actions).all()
    assert isinstance(ppo.net.actor_encoder, BoardCNNEncoder) and ppo.net.actor_encoder.board_shape == (
        3,
        3,
        2,
    )


class FixedQ(torch.nn.Module):
    """Q-values 0, 1, ..., 8 whatever the board: the best move is always 8 unless it is illegal."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        assert features.shape[-1] == 18  # the board only, not the mask
        return torch.arange(9.0).expand(len(features), 9)


def test_dqn_acts_and_bootstraps_over_legal_moves_only():
    dqn = DQN(env_spec=tictactoe_spec(), hidden_sizes=[16])
    dqn.net = FixedQ()
    obs = torch.zeros(3, 27)
    obs[0, 18:] = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0, 0])  # moves 0 and 3
    obs[1, 18:] = 1.0  # every move
    q, legal = dqn.masked_q(dqn.net, obs)
    assert legal[2].all()  # no legal move (a finished game): every action counts
    assert dqn.act(obs, mode="eval").tolist() == [3, 8, 8]
    explored = dqn.act(obs[:1].repeat(500, 1), mode="collect", env_steps=0, generator=torch.Generator())
    assert set(explored.tolist()) == {0, 3}  # epsilon 1 at step 0: random, but among the legal moves


# --- config errors -----------------------------------------------------------------------------------
def test_a_policy_without_masks_refuses_a_masked_env():
    with pytest.raises(ConfigError, match="PPO, A2C, IMPALA or DQN") as err:
        Rainbow(env_spec=tictactoe_spec())
    assert err.value.field == "data.init_args.env_id"


def test_two_player_games_refuse_subprocess_envs():
    with pytest.raises(ConfigError, match="in-process") as err:
        OnPolicyDataModule(env_id=TICTACTOE, n_envs=2, vectorization="subprocess")
    assert "vectorization" in err.value.field


def test_matchmaking_on_a_one_player_env_names_the_env():
    data = OffPolicyDataModule(env_id="CartPole-v1", n_envs=1)
    with pytest.raises(ConfigError, match="two-player") as err:
        data.set_matchmaking(lambda: "random", {})
    assert err.value.field == "data.init_args.env_id"
