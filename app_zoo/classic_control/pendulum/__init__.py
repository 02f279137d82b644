"""Pendulum-v1: swing a pendulum up and hold it upright with a bounded torque; continuous actions."""
