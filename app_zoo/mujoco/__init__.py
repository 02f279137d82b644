"""MuJoCo locomotion (gymnasium v5 envs): Hopper, HalfCheetah, Walker2d; continuous actions."""
