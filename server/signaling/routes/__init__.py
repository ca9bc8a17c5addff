"""Signaling routes, one module per feature; each ``register``s its
messages on the one ``Dispatcher``."""
