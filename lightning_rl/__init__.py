"""lightning_rl: deep reinforcement learning on PyTorch Lightning (nerveX's framework, Lightning's idioms)."""

__version__ = "0.1.0"
