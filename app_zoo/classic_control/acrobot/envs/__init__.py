from app_zoo.classic_control.acrobot.envs.acrobot_env import AcrobotEnv

__all__ = ["AcrobotEnv"]
