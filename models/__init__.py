"""Shared vocabulary: pydantic contracts, SQLAlchemy tables and the names every side agrees on."""
