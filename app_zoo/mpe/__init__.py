"""MPE (the multi-particle environments, ``mpe2``): cooperative navigation tasks for multi-agent RL."""
