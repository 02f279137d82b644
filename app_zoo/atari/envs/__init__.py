from app_zoo.atari.envs.atari_env import AtariEnv
from app_zoo.atari.envs.atari_wrappers import EpisodicLifeWrapper, FireResetWrapper

__all__ = ["AtariEnv", "EpisodicLifeWrapper", "FireResetWrapper"]
