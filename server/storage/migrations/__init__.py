"""Alembic migrations of the one database, run at start-up (``database.py``)."""
