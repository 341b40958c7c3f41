"""Training: the loop, its schedule and checkpoints."""
