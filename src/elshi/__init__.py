"""elshi: a self-hosted digital-diplomacy platform for a foreign ministry and its missions."""

__version__ = "0.1.0"
