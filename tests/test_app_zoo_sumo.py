"""app_zoo/sumo: the traffic-signal env on the shipped 2x2 grid, its exact signal timing and reward, the
env managers, the DQN config through the CLI, the fixed-time baseline and the evaluation script.

Skipped where SUMO is not installed (``apt-get install sumo``; ``pip install -e '.[sumo]'``).
"""

from __future__ import annotations

import gc
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from cli_utils import REPO
from env_utils import random_rollout

pytest.importorskip("traci", reason="TraCI is not installed: pip install -e '.[sumo]'")

from app_zoo.sumo import baseline, evaluate  # noqa: E402
from app_zoo.sumo.envs import TrafficSignalEnv, sumo_unavailable_reason  # noqa: E402
from app_zoo.sumo.envs.signals import GREEN_HOLD_S, ProgramPhase, TrafficLight, yellow_between  # noqa: E402
from lightning_rl.cli import RLCLI  # noqa: E402
from lightning_rl.envs import SubprocessEnvManager, SyncEnvManager  # noqa: E402

pytestmark = pytest.mark.skipif(sumo_unavailable_reason() is not None, reason=str(sumo_unavailable_reason()))

CONFIG = REPO / "app_zoo" / "sumo" / "configs" / "grid2x2_dqn.yaml"
NS, EW = "GGgrrrGGgrrr", "rrrGGgrrrGGg"  # the grid's two green phases (north-south, east-west)


@pytest.fixture
def make_env():
    """``make_env(**cfg)``: a TrafficSignalEnv closed after the test."""
    envs = []

    def make(**cfg):
        envs.append(TrafficSignalEnv(cfg))
        return envs[-1]

    yield make
    for env in envs:
        env.close()


def tls_state(env: TrafficSignalEnv, tls_id: str) -> str:
    return env.unwrapped.sim.conn.trafficlight.getRedYellowGreenState(tls_id)


def test_network_loads_with_spaces_and_info(make_env):
    env = make_env(episode_seconds=60)
    info = env.info()
    assert info.env_id == "TrafficSignalEnv" and info.max_episode_steps == 12
    # 4 intersections x (4 incoming lanes + 2 phases one-hot + min-green flag)
    assert info.obs_space == gym.spaces.Box(0.0, 1.0, shape=(28,), dtype=np.float32)
    assert info.act_space == gym.spaces.Discrete(16) and info.act_shape == (16,)
    assert (info.rew_space.low, info.rew_space.high) == (-np.inf, 0.0)
    sim = env.unwrapped
    assert [tl.tls_id for tl in sim.lights] == ["A0", "A1", "B0", "B1"]
    assert all(tl.greens == (NS, EW) and len(tl.lanes) == 4 for tl in sim.lights)
    obs, step_info = env.reset(seed=0)
    assert obs in info.obs_space and obs.dtype == np.float32
    assert step_info == {
        "sim_time": 0.0,
        "mean_waiting_time": 0.0,
        "total_waiting_time": 0.0,
        "vehicles": 0,
        "halting": 0,
        "pending": 0,
    }
    assert [tls_state(env, tls_id) for tls_id in ("A0", "A1", "B0", "B1")] == [NS] * 4


def test_joint_action_encodes_one_phase_per_intersection(make_env):
    sim = make_env().unwrapped
    assert sim.decode_action(0) == [0, 0, 0, 0] and sim.decode_action(15) == [1, 1, 1, 1]
    assert sim.decode_action(2) == [0, 1, 0, 0]  # action = sum_k phase_k * 2**k
    assert all(sim.encode_action(sim.decode_action(a)) == a for a in range(16))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"delta": 5}, r"unknown keys \['delta'\]; allowed: \['delta_t', 'episode_seconds'"),
        ({"yellow_time": 5}, r"yellow_time must be < delta_t \(5\), got 5"),
        ({"episode_seconds": 62}, r"episode_seconds must be a multiple of delta_t \(5\), got 62"),
        ({"min_green": -1}, r"min_green must be an int >= 0, got -1"),
        ({"reward_scale": 0}, r"reward_scale must be > 0, got 0"),
        ({"net_file": "nowhere.net.xml"}, r"net_file: 'nowhere.net.xml' is not a file"),
    ],
)
def test_bad_config_fails_naming_the_field(cfg, message):
    with pytest.raises(ValueError, match=message):
        TrafficSignalEnv(cfg)


def test_yellow_shows_only_on_links_that_lose_green():
    assert yellow_between(NS, EW) == "yyyrrryyyrrr"
    assert yellow_between("GGrr", "GrGr") == "Gyrr"  # a link green in both phases stays green


def test_a_switch_shows_yellow_then_the_new_green(make_env):
    env = make_env(delta_t=5, yellow_time=3, min_green=0)
    env.reset(seed=0)
    conn = env.unwrapped.sim.conn
    shown = []  # A0's and A1's signals at each simulated second
    advance = conn.simulationStep

    def second_by_second(until: float) -> None:
        while conn.simulation.getTime() < until:
            advance(conn.simulation.getTime() + 1)
            shown.append((tls_state(env, "A0"), tls_state(env, "A1")))

    conn.simulationStep = second_by_second
    env.step(1)  # A0 to east-west, the others stay north-south
    assert shown == [("yyyrrryyyrrr", NS)] * 3 + [(EW, NS)] * 2
    shown.clear()
    env.step(1)  # no change: no yellow
    assert shown == [(EW, NS)] * 5
    assert env.unwrapped.lights[0].phase == 1 and env.unwrapped.lights[0].green_start == 3.0


def test_signal_program_holds_greens_and_chains_each_yellow_to_its_target():
    light = TrafficLight("J", greens=("GGrr", "rrGG", "GrGr"), lanes=("a", "b"))
    program = light.program(yellow_time=3)
    assert program[:3] == [ProgramPhase(GREEN_HOLD_S, state) for state in light.greens]
    assert program[3:] == [  # from green i to j: i = 0, 1, 2; j != i
        ProgramPhase(3, "yyrr", (1,)),
        ProgramPhase(3, "Gyrr", (2,)),
        ProgramPhase(3, "rryy", (0,)),
        ProgramPhase(3, "rrGy", (2,)),
        ProgramPhase(3, "Gryr", (0,)),
        ProgramPhase(3, "yrGr", (1,)),
    ]
    for light.phase in range(3):
        for target in set(range(3)) - {light.phase}:
            assert program[light.switch_index(target, 3)].next == (target,)
    assert light.program(yellow_time=0) == program[:3] and light.switch_index(1, 0) == 1


def test_min_green_is_respected(make_env):
    env = make_env(delta_t=5, yellow_time=3, min_green=10)
    obs, _ = env.reset(seed=0)
    a0 = env.unwrapped.lights[0]
    flag = 6  # A0's slice of the observation: 4 queues, 2 phases one-hot, the may-switch flag
    states, flags = [], [obs[flag]]
    for action in [1, 1, 1, 0, 0, 0]:  # ask A0 for east-west three times, then back three times
        obs, *_ = env.step(action)
        states.append(tls_state(env, "A0"))
        flags.append(obs[flag])
    # green 0 began at 0 s: requests at 0 and 5 s are ignored, the one at 10 s switches (green from 13 s);
    # going back is asked at 15 s (green 2 s) and 20 s (7 s), honoured at 25 s (12 s)
    assert states == [NS, NS, EW, EW, EW, NS]
    assert flags == [0, 0, 1, 0, 0, 1, 0]
    assert a0.phase == 0 and a0.green_start == 28.0


def test_reward_is_the_change_of_total_waiting_time(make_env):
    env = make_env(episode_seconds=300, reward_scale=0.01)
    env.reset(seed=3)
    conn = env.unwrapped.sim.conn
    waited: dict[str, float] = {}  # independent of the env's subscriptions: one getter per vehicle
    total, rewards = 0.0, []
    rng = np.random.default_rng(0)
    for _ in range(60):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(16)))
        waited.update({v: conn.vehicle.getAccumulatedWaitingTime(v) for v in conn.vehicle.getIDList()})
        before, total = total, sum(waited.values())
        assert reward == pytest.approx((before - total) * 0.01, abs=1e-9)
        assert info["total_waiting_time"] == pytest.approx(total)
        assert info["mean_waiting_time"] == pytest.approx(total / len(waited))
        rewards.append(reward)
    assert truncated and not terminated
    assert min(rewards) < 0 and max(rewards) <= 0 and info["vehicles"] == len(waited) > 100


def test_episode_truncates_at_the_horizon(make_env):
    env = make_env(episode_seconds=30)
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(6)]
    assert ends == [(False, False)] * 5 + [(False, True)]
    assert env.unwrapped.sim.conn.simulation.getTime() == 30.0


def test_a_seed_replays_the_same_traffic(make_env):
    env = make_env(episode_seconds=100)

    def final_info(seed: int) -> dict:
        env.reset(seed=seed)
        for step in range(20):
            *_, info = env.step(step % 16)
        return info

    assert final_info(7) == final_info(7) != final_info(8)


def test_each_env_runs_its_own_sumo_and_leaves_none_behind(make_env):
    first, second = make_env(), make_env()
    first.reset(seed=0)
    second.reset(seed=0)
    processes = [first.unwrapped.sim.process, second.unwrapped.sim.process]
    assert processes[0].pid != processes[1].pid and all(p.poll() is None for p in processes)
    first.step(0)
    second.step(15)
    first.reset(seed=1)  # a new episode starts a new SUMO and ends the old one
    assert processes[0].poll() is not None and first.unwrapped.sim.process.poll() is None
    first.close()
    first.close()  # idempotent
    assert first.unwrapped.sim is None
    orphan = TrafficSignalEnv({})
    orphan.reset(seed=0)
    process = orphan.unwrapped.sim.process
    del orphan
    gc.collect()
    assert process.poll() is not None  # an env dropped without close() does not leak its SUMO


@pytest.mark.parametrize("manager", [SyncEnvManager, SubprocessEnvManager])
def test_random_rollout_through_the_env_managers(manager):
    envs = manager(TrafficSignalEnv, env_cfg=[{"episode_seconds": 50}, {"episode_seconds": 50}], n_envs=2)
    rollout = random_rollout(envs, 25)
    assert rollout.first_obs.shape == (2, 28) and rollout.obs.dtype == np.float32
    assert rollout.episodes_ended == 4 and rollout.reward.max() <= 0 and np.isfinite(rollout.reward).all()


def short_config(tmp_path: Path) -> Path:
    """The shipped config with 100 s episodes, for fast runs."""
    config = yaml.safe_load(CONFIG.read_text())
    config["data"]["init_args"]["env_kwargs"] = {"episode_seconds": 100}
    path = tmp_path / "grid2x2_dqn_short.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A few DQN updates on 100 s episodes through the CLI, with the shipped config."""
    root = tmp_path_factory.mktemp("sumo_run")
    config = short_config(root)
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            str(config),
            f"--trainer.default_root_dir={root}",
            "--trainer.max_steps=16",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.n_envs=2",
            "--data.init_args.learning_starts=64",
            "--evaluator.n_episodes=2",
            "--evaluator.eval_interval=8",
        ]
    )
    return config, cli


def test_the_dqn_config_trains_through_the_cli(short_run):
    _, cli = short_run
    assert cli.model.spec.n_actions == 16 and cli.model.spec.obs_shape == (28,)
    assert cli.result["train_iter"] == 16 and cli.result["env_steps"] >= 64
    assert -100 < cli.result["eval_return_mean"] <= 0  # 100 s of waiting time, scaled by 0.01


def test_fixed_time_baseline_replays_the_static_program(make_env, capsys):
    env = make_env(episode_seconds=100)
    controller = baseline.FixedTimeController(env, phase_seconds=45)
    env.reset(seed=0)
    states = []
    for _ in range(20):
        env.step(controller(None))
        states.append(tls_state(env, "B1"))
    # 9 decisions (45 s) per phase, all intersections in step
    assert states == [NS] * 9 + [EW] * 9 + [NS] * 2
    with pytest.raises(ValueError, match=r"phase_seconds must be a multiple of delta_t \(5\)"):
        baseline.FixedTimeController(env, phase_seconds=12)
    baseline.main(["--episodes", "1", "--phase-seconds", "15"])
    assert "fixed-time (15 s phases), seeds 20000-20000: mean waiting time" in capsys.readouterr().out


def test_evaluate_compares_the_checkpoint_with_fixed_time(short_run, capsys):
    config, cli = short_run
    evaluate.main(["--ckpt", cli.result["ckpt_path"], "--config", str(config), "--episodes", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2 episodes, seeds 20000-20001"
    assert lines[1].split()[:2] == ["controller", "mean"]
    assert lines[2].startswith("fixed time (45 s phases)") and lines[3].startswith("DQN")
    assert all(float(line.split()[-3]) >= 0 for line in lines[2:])
