"""The LangGraph pipeline every chat request runs through."""
