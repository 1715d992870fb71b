"""Alembic migrations of the registry (run with hepanav.registry.db.upgrade)."""
