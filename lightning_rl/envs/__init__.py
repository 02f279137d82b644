"""Environment interface: env wrappers, vector envs and evaluation rollouts over gymnasium."""

from lightning_rl.envs.base import BaseEnv, ElementShape, EnvInfo, GymEnv
from lightning_rl.envs.episodes import check_reports_episodes, finished_episodes
from lightning_rl.envs.evaluation import EpisodeStats, run_episodes
from lightning_rl.envs.manager import (
    EnvManager,
    EnvManagerError,
    EnvStep,
    SubprocessEnvManager,
    SyncEnvManager,
)
from lightning_rl.envs.multi_agent import LBForagingEnv, MultiAgentEnv, MultiAgentLayout, PettingZooEnv
from lightning_rl.envs.two_player import (
    RANDOM,
    GameResult,
    OpponentPool,
    RandomOpponent,
    TwoPlayerEnv,
    play_games,
)
from lightning_rl.envs.vector import make_vector_env, probe_env_spec, resolve_env_factory, true_next_obs
from lightning_rl.envs.video import EpisodeVideo, Mp4Writer, enable_rgb_frames, record_episode

__all__ = [
    "BaseEnv",
    "ElementShape",
    "EnvInfo",
    "EnvManager",
    "EnvManagerError",
    "EnvStep",
    "GymEnv",
    "LBForagingEnv",
    "MultiAgentEnv",
    "MultiAgentLayout",
    "PettingZooEnv",
    "EpisodeStats",
    "EpisodeVideo",
    "Mp4Writer",
    "enable_rgb_frames",
    "record_episode",
    "GameResult",
    "OpponentPool",
    "RANDOM",
    "RandomOpponent",
    "TwoPlayerEnv",
    "play_games",
    "check_reports_episodes",
    "finished_episodes",
    "make_vector_env",
    "probe_env_spec",
    "resolve_env_factory",
    "run_episodes",
    "SubprocessEnvManager",
    "SyncEnvManager",
    "true_next_obs",
]
