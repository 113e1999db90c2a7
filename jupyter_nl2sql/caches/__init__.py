"""Caches of model replies, schemas and query results: in memory, on disk and shared through Redis."""
