"""Persistence: SQLAlchemy 2 tables, the database engine, Alembic migrations."""
