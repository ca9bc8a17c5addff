"""Sidecoach: a self-hosted, real-time coaching server for schools."""

__version__ = "0.1.0"
