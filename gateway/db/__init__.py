"""Persistence: engine, typed models, repositories (the only place with SQL) and migrations."""
