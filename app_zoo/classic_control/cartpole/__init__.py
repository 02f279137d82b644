"""CartPole-v1: balance a pole on a cart; reward 1 per step, episodes end at 500 steps."""
