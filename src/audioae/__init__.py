"""audioae: train, sweep, evaluate and export neural audio autoencoders."""

__version__ = "0.1.0"
