"""Classic control: CartPole, Acrobot, MountainCar (discrete) and Pendulum (continuous)."""
