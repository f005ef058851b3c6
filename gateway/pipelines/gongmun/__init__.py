"""공문 (official letter) analysis: the parsers, the fields and their schema, the LLM step."""
