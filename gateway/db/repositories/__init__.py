"""Repositories: the only modules that build SQL. They flush, never commit."""
