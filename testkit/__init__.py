"""Test and benchmark helpers shared by ``tests/`` and ``scripts/``: real
participants (aiortc peers), a real server in-process, Chromium pages,
network namespaces, processes stopped by PID. Nothing here is a mock of
the server; scripts import this package, never ``tests/``."""
