"""Prompt templates and their versions (issue #24): the sandboxed renderer and version diffs."""
