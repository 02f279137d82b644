from app_zoo.mujoco.envs.mujoco_env import HalfCheetahEnv, HopperEnv, MujocoEnv, Walker2dEnv

__all__ = ["HalfCheetahEnv", "HopperEnv", "MujocoEnv", "Walker2dEnv"]
