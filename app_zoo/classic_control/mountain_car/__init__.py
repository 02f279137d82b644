"""MountainCar-v0: drive an underpowered car up a hill by rocking; reward -1 per step, ends at 200."""
