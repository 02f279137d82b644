"""Acrobot-v1: swing a two-link pendulum's tip above a line; reward -1 per step, episodes end at 500."""
