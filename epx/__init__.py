"""epx: an experiment runner for RL with verifiable rewards on language models."""

__version__ = "0.1.0"
