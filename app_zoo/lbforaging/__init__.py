"""Level-Based Foraging (``lbforaging``): grid-world foraging where players must combine their levels."""
