"""Where sessions are kept: the session records and their SQLite store, and the
worker thread that keeps SQLite off the event loop.
"""
