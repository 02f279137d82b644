"""Env managers: vector-env semantics, per-env configs, async mode, fault recovery and clean shutdown."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from app_zoo.classic_control.cartpole.envs import CartPoleEnv
from lightning_rl.data import NStepTransitionBuilder
from lightning_rl.data.collector import VectorCollector
from lightning_rl.envs import EnvManagerError, SubprocessEnvManager, SyncEnvManager, make_vector_env

MANAGERS = [SyncEnvManager, SubprocessEnvManager]


class CountingEnv(gym.Env):
    """obs = [episode_uid, t, length]; reward = t + 1; the episode ends after ``length`` steps.

    Faults, drawn per step from the env's own seeded RNG: ``crash`` (the process exits), ``hang``
    (sleeps far past any timeout) and ``error`` (raises). Each fault first drops a marker file in
    ``marker_dir`` so a test can count what was injected.
    """

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, cfg: dict | None = None):
        cfg = dict(cfg or {})
        self.length = cfg.get("length", 10)
        self.p = {kind: cfg.get(f"p_{kind}", 0.0) for kind in ("crash", "hang", "error")}
        self.marker_dir = cfg.get("marker_dir")
        self.sleep = cfg.get("sleep", 0.0)
        self.info_every_step = cfg.get("info", False)
        self.uid = 0.0
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.uid, self.t, self.length], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.uid = float(self.np_random.integers(1, 2**24))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        for kind, p in self.p.items():
            if p and self.np_random.random() < p:
                (Path(self.marker_dir) / f"{kind}-{os.getpid()}-{time.monotonic_ns()}").touch()
                if kind == "crash":
                    os._exit(3)
                if kind == "hang":
                    time.sleep(3600)
                raise RuntimeError("injected env error")
        if self.sleep:
            time.sleep(self.sleep)
        self.t += 1
        info = {"t": self.t} if self.info_every_step else {}
        return self._obs(), float(self.t), self.t >= self.length, False, info


def markers(directory: Path, kind: str) -> int:
    return len(list(directory.glob(f"{kind}-*")))


@pytest.fixture
def no_leaked_workers():
    yield
    leftovers = [p for p in mp.active_children() if p.name.startswith("lightning_rl-env-worker")]
    assert leftovers == [], f"worker processes still alive: {leftovers}"


@pytest.mark.parametrize("manager", MANAGERS)
def test_same_transitions_as_gymnasium_sync_vector_env(manager, no_leaked_workers):
    """Seeded CartPole: identical obs, rewards, flags and final observations step for step."""
    reference = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1")] * 3, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    env = manager(CartPoleEnv, env_cfg=[{}, {}, {}])
    try:
        assert env.num_envs == 3 and env.single_action_space == gym.spaces.Discrete(2)
        assert env.metadata["autoreset_mode"] == reference.metadata["autoreset_mode"]
        assert env.observation_space == reference.observation_space
        assert env.action_space == reference.action_space
        obs, _ = env.reset(seed=7)
        ref_obs, _ = reference.reset(seed=7)
        np.testing.assert_array_equal(obs, ref_obs)
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(300):
            action = rng.integers(0, 2, 3)
            obs, reward, terminated, truncated, info = env.step(action)
            ref_obs, ref_reward, ref_terminated, ref_truncated, ref_info = reference.step(action)
            np.testing.assert_array_equal(obs, ref_obs)
            np.testing.assert_array_equal(reward, ref_reward)
            np.testing.assert_array_equal(terminated, ref_terminated)
            np.testing.assert_array_equal(truncated, ref_truncated)
            assert not info["dropped"].any()
            for i in np.flatnonzero(terminated | truncated):
                np.testing.assert_array_equal(info["final_obs"][i], ref_info["final_obs"][i])
                ended += 1
        assert ended > 10
        assert env.stats()["episodes"] == ended and env.stats()["env_steps"] == 900
    finally:
        env.close()
        reference.close()


@pytest.mark.parametrize("manager", MANAGERS)
def test_env_cfg_per_env_and_merged_infos(manager, no_leaked_workers):
    env = manager(CountingEnv, env_cfg=[{"length": 2, "info": True}, {"length": 3}])
    try:
        obs, _ = env.reset(seed=0)
        assert obs[:, 2].tolist() == [2.0, 3.0]
        obs, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.int64))
        assert reward.tolist() == [1.0, 1.0] and info["t"][0] == 1 and info["_t"].tolist() == [True, False]
        obs, reward, terminated, _, info = env.step(np.zeros(2, dtype=np.int64))
        assert terminated.tolist() == [True, False]
        assert info["final_obs"][0].tolist()[1:] == [2.0, 2.0] and obs[0, 1] == 0.0  # autoreset
        assert info["final_info"]["t"][0] == 2 and info["_final_info"].tolist() == [True, False]
        assert env.stats()["return_mean"] == 3.0  # env 0's episode: 1 + 2
    finally:
        env.close()


def test_build_errors_name_the_field():
    with pytest.raises(ValueError, match="n_envs=3 but env_cfg has 2 entries"):
        SyncEnvManager(CountingEnv, env_cfg=[{}, {}], n_envs=3)
    with pytest.raises(ValueError, match="n_envs must be set"):
        SyncEnvManager(CountingEnv)
    with pytest.raises(ValueError, match=r"n_workers must be <= n_envs=2, got 3"):
        SubprocessEnvManager(CountingEnv, n_envs=2, n_workers=3)
    with pytest.raises(ValueError, match=r"wait_num=1 \(async mode\) needs n_workers == n_envs=4"):
        SubprocessEnvManager(CountingEnv, n_envs=4, n_workers=2, wait_num=1)
    with pytest.raises(ValueError, match=r"env_manager: unknown keys \['step_timeout'\].*'sync'"):
        make_vector_env(CountingEnv, 2, "sync", {"step_timeout": 1.0})


@pytest.mark.parametrize("manager", MANAGERS)
def test_env_num_is_nervex_spelling_of_n_envs(manager, no_leaked_workers):
    for kwargs in ({"n_envs": 3}, {"env_num": 3}, {"n_envs": 3, "env_num": 3}):
        env = manager(CountingEnv, **kwargs)
        assert env.num_envs == 3
        env.close()
    env = manager(CountingEnv, env_cfg=[{}, {}], env_num=2)  # nerveX's call
    assert env.num_envs == 2
    env.close()
    with pytest.raises(ValueError, match="n_envs=2 and env_num=3 differ; env_num is nerveX's name"):
        manager(CountingEnv, n_envs=2, env_num=3)
    with pytest.raises(ValueError, match="n_envs=3 but env_cfg has 2 entries"):
        manager(CountingEnv, env_cfg=[{}, {}], env_num=3)


class OtherSpaceEnv(CountingEnv):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


@pytest.mark.parametrize("manager", MANAGERS)
def test_envs_with_different_spaces_are_refused(manager, no_leaked_workers):
    with pytest.raises(EnvManagerError, match="env 1 has observation space .* must share their spaces"):
        manager([CountingEnv, OtherSpaceEnv])


@pytest.mark.parametrize("manager", MANAGERS)
def test_episode_num_and_ready_api(manager, no_leaked_workers):
    """nerveX's actor loop: every env runs exactly ``episode_num`` episodes, then the manager is done."""
    env = manager(CountingEnv, env_cfg=[{"length": 2}, {"length": 3}, {"length": 5}], episode_num=2)
    try:
        env.reset(seed=1)
        steps = {0: 0, 1: 0, 2: 0}
        while not env.done:
            ready = env.ready_obs
            for i, result in env.step_ready({i: 0 for i in ready}).items():
                steps[i] += 1
                assert result.reward == steps[i] - (steps[i] - 1) // (2, 3, 5)[i] * (2, 3, 5)[i]
        assert steps == {0: 4, 1: 6, 2: 10} and env.ready_obs == {}
        with pytest.raises(EnvManagerError, match=r"envs \[0\] are not ready"):
            env.step_ready({0: 0})
    finally:
        env.close()


def test_async_mode_returns_once_wait_num_envs_are_ready(no_leaked_workers):
    cfg = [{"sleep": 0.0}, {"sleep": 1.0}]
    env = SubprocessEnvManager(CountingEnv, env_cfg=cfg, wait_num=1, step_timeout=5.0)
    try:
        env.reset(seed=0)
        start = time.monotonic()
        first = env.step_ready({0: 0, 1: 0})
        assert list(first) == [0] and time.monotonic() - start < 0.8
        assert list(env.ready_obs) == [0]  # env 1 is still stepping
        with pytest.raises(EnvManagerError, match="in flight"):
            env.step(np.zeros(2, dtype=np.int64))
        later = env.step_ready({})
        while 1 not in later:
            later.update(env.step_ready({}))
        assert later[1].reward == 1.0 and sorted(env.ready_obs) == [0, 1]
    finally:
        env.close()


@pytest.mark.parametrize("n_workers", [4, 2])
def test_faults_during_a_10k_step_collection_are_recovered_counted_and_lose_nothing_else(
    tmp_path, n_workers, no_leaked_workers
):
    """Envs crash (process exit), hang and raise at random steps. The collection finishes; every fault is
    counted; every transition that is not a dropped step is a real, consecutive env step."""
    cfg = {"length": 25, "p_crash": 4e-4, "p_hang": 2e-4, "p_error": 3e-4, "marker_dir": str(tmp_path)}
    env = SubprocessEnvManager(
        CountingEnv, env_cfg=[cfg] * 4, n_workers=n_workers, step_timeout=1.0, max_retries=3
    )
    try:
        obs, _ = env.reset(seed=123)
        dropped_total = 0
        for _ in range(2500):
            next_obs, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.int64))
            dropped = info["dropped"]
            dropped_total += int(dropped.sum())
            real_next = np.where((terminated | truncated)[:, None], info["final_obs"], next_obs)
            ok = ~dropped
            # a real step continues its episode: same uid, t + 1, reward t + 1
            np.testing.assert_array_equal(real_next[ok, 0], obs[ok, 0])
            np.testing.assert_array_equal(real_next[ok, 1], obs[ok, 1] + 1)
            np.testing.assert_array_equal(reward[ok], obs[ok, 1] + 1)
            # a dropped step bootstraps from where the env was and restarts a fresh episode
            np.testing.assert_array_equal(info["final_obs"][dropped], obs[dropped])
            assert (
                (next_obs[dropped, 1] == 0).all()
                and (reward[dropped] == 0).all()
                and truncated[dropped].all()
            )
            obs = next_obs
        stats = env.stats()
        injected = {kind: markers(tmp_path, kind) for kind in ("crash", "hang", "error")}
        assert injected["crash"] >= 2 and injected["hang"] >= 1 and injected["error"] >= 2, injected
        assert stats["faults/crash"] == injected["crash"]
        assert stats["faults/timeout"] == injected["hang"]
        assert stats["faults/error"] == injected["error"]
        envs_per_worker = 4 // n_workers
        assert dropped_total == stats["dropped_episodes"] == envs_per_worker * sum(injected.values())
        assert stats["env_steps"] + dropped_total == 10_000
    finally:
        env.close()


def test_sync_manager_recovers_an_env_that_raises(tmp_path):
    cfg = {"length": 25, "p_error": 2e-3, "marker_dir": str(tmp_path)}
    env = SyncEnvManager(CountingEnv, env_cfg=[cfg] * 4)
    env.reset(seed=5)
    dropped = 0
    for _ in range(2500):
        dropped += int(env.step(np.zeros(4, dtype=np.int64))[4]["dropped"].sum())
    assert markers(tmp_path, "error") >= 5
    assert env.stats()["faults/error"] == markers(tmp_path, "error") == dropped
    env.close()


class BrokenAfterFirstEpisodeEnv(CountingEnv):
    """Every env built after the first one raises on reset: a deterministic bug, not a random fault."""

    def reset(self, *, seed=None, options=None):
        if seed is not None and seed >= 1_000_003:  # a rebuilt env (see EnvManager._env_seed)
            raise RuntimeError("broken simulator")
        return super().reset(seed=seed, options=options)


@pytest.mark.parametrize("manager", MANAGERS)
def test_retries_are_bounded(manager, tmp_path, no_leaked_workers):
    cfg = {"p_error": 1.0, "marker_dir": str(tmp_path)}
    env = manager(BrokenAfterFirstEpisodeEnv, env_cfg=[cfg], max_retries=2)
    try:
        env.reset(seed=0)
        with pytest.raises(
            EnvManagerError,
            match=r"env 0 \(BrokenAfterFirstEpisodeEnv\) is broken: 3 faults in a row .*=2.*broken simulator",
        ):
            env.step(np.zeros(1, dtype=np.int64))
    finally:
        env.close()


def test_reset_timeout_and_close_leave_no_processes(tmp_path):
    env = SubprocessEnvManager(CountingEnv, n_envs=3, reset_timeout=5.0)
    processes = [worker.process for worker in env._workers]
    env.reset(seed=0)
    env.close()
    assert all(p._closed for p in processes)  # joined and released: no zombies
    with pytest.raises(EnvManagerError, match="closed"):
        env.reset()

    hang = SubprocessEnvManager(CountingEnv, env_cfg=[{"p_hang": 1.0, "marker_dir": str(tmp_path)}] * 2)
    start = time.monotonic()
    hang.close()  # workers idle: closing is quick
    assert time.monotonic() - start < 2.0
    assert mp.active_children() == []


def test_collector_and_nstep_builder_skip_dropped_steps(tmp_path):
    """Through the training collector: a dropped step is neither a transition nor an episode."""
    cfg = {"length": 6, "p_error": 0.02, "marker_dir": str(tmp_path)}
    collector = VectorCollector(SyncEnvManager(CountingEnv, env_cfg=[cfg] * 2))
    builder = NStepTransitionBuilder(2, nstep=3)
    collector.reset(seed=3)
    transitions = []
    for _ in range(600):
        out = builder.add(*collector.step(lambda obs: torch.zeros(2, dtype=torch.int64)))
        if out is not None:
            transitions.append(out)
    faults = markers(tmp_path, "error")
    assert faults >= 5
    batch = torch.cat(transitions)
    obs, next_obs, steps = batch["obs"], batch["next_obs"], batch["steps"]
    assert (next_obs[:, 0] == obs[:, 0]).all()  # never crosses an episode
    assert (next_obs[:, 1] == obs[:, 1] + steps).all()  # only real, consecutive steps
    # every real step starts exactly one transition; dropped steps start none
    assert len(batch) == 1200 - faults - int(builder.pending().sum())
    assert all(length == 6 for length in collector.recent_lengths)  # broken episodes are not counted
    collector.env.close()


class FlakyCartPole(gym.Wrapper):
    """CartPole whose process dies now and then (a crashing simulator), for a fit through the CLI."""

    def __init__(self, marker_dir: str, p_crash: float = 0.01):
        super().__init__(gym.make("CartPole-v1"))
        self.marker_dir, self.p_crash = marker_dir, p_crash

    def step(self, action):
        if self.np_random.random() < self.p_crash:
            (Path(self.marker_dir) / f"crash-{os.getpid()}").touch()
            os._exit(3)
        return self.env.step(action)


def test_fit_with_the_subprocess_manager_survives_env_crashes_and_logs_them(tmp_path, no_leaked_workers):
    import csv

    from cli_utils import short_run_args

    from lightning_rl.cli import RLCLI

    args = short_run_args(
        tmp_path,
        "--data.init_args.env_id=null",
        "--data.init_args.env_fn=test_env_managers.FlakyCartPole",
        f"--data.init_args.env_kwargs={{marker_dir: {tmp_path}}}",
        "--data.init_args.n_envs=2",
        "--data.init_args.vectorization=subprocess",
        "--data.init_args.env_manager={step_timeout: 10, max_retries: 5}",
        max_steps=200,
    )
    cli = RLCLI(args=args)
    crashes = markers(tmp_path, "crash")
    assert crashes >= 3
    with open(Path(cli.trainer.log_dir) / "metrics.csv") as f:
        logged = [float(row["env/faults/crash"]) for row in csv.DictReader(f) if row.get("env/faults/crash")]
    assert logged and logged == sorted(logged) and 0 < logged[-1] <= crashes
    assert cli.datamodule.collector is None  # teardown closed the manager and its workers


def test_evaluation_caps_the_workers_at_the_eval_envs(no_leaked_workers):
    from lightning_rl.datamodules import OffPolicyDataModule

    dm = OffPolicyDataModule(n_envs=2, vectorization="subprocess", env_manager={"n_workers": 2})
    policy = type("Left", (), {"training": False, "act": lambda self, obs, mode: obs[:, 0].long() * 0})()
    policy.eval = policy.train = lambda *a: None
    stats = dm.evaluate(policy, n_episodes=1, seed=10_000)  # one eval env: one worker
    assert len(stats.returns) == 1 and dm._eval_env.num_envs == 1
    dm.teardown("fit")


class HangsUnderSeedOneEnv(CountingEnv):
    """Hangs at its 3rd step whenever it was reset with seed 1 (env 1 after ``reset(seed=0)``)."""

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.hang_now = seed == 1
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.hang_now and self.t == 2:
            time.sleep(3600)
        return super().step(action)


def test_envs_sharing_a_failed_worker_restart_with_fresh_seeds(no_leaked_workers):
    """A fault blamed on env 0 of a 2-env worker (a hang is not traceable to one env) reseeds env 1 too;
    with its old seed, env 1 would replay into the same hang."""
    env = SubprocessEnvManager(HangsUnderSeedOneEnv, n_envs=2, n_workers=1, step_timeout=0.5)
    try:
        env.reset(seed=0)
        dropped = [env.step(np.zeros(2, dtype=np.int64))[4]["dropped"].tolist() for _ in range(8)]
        assert dropped[2] == [True, True] and sum(map(sum, dropped)) == 2
        assert env.stats()["faults/timeout"] == 1
    finally:
        env.close()


def test_evaluation_through_the_subprocess_manager_leaves_out_dropped_episodes(tmp_path, no_leaked_workers):
    """Envs crash and raise during an evaluation: each env's quota is filled by whole episodes only."""
    from lightning_rl.envs import run_episodes

    cfg = {"length": 10, "p_crash": 0.02, "p_error": 0.02, "marker_dir": str(tmp_path)}
    env = SubprocessEnvManager(CountingEnv, env_cfg=[cfg] * 3, max_retries=5)
    try:
        stats = run_episodes(lambda obs: torch.zeros(len(obs), dtype=torch.int64), env, n_episodes=12, seed=0)
        faults = env.stats()
    finally:
        env.close()
    assert markers(tmp_path, "crash") >= 1 and markers(tmp_path, "error") >= 1
    assert faults["dropped_episodes"] == markers(tmp_path, "crash") + markers(tmp_path, "error")
    assert stats.lengths.tolist() == [10] * 12 and stats.returns.tolist() == [55.0] * 12  # 1 + ... + 10
