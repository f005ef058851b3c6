"""Prism: an OpenAI-compatible LLM gateway."""
