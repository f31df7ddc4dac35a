"""Migration scripts, one per schema revision (Alembic applies them in order)."""
