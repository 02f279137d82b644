"""Atari 2600 games (ale-py) with DeepMind's preprocessing: frame skip, 84x84 grayscale, frame stack."""
