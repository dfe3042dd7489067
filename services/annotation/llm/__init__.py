"""Model annotators: the LLM judge, the LLM teacher, their versioned prompts and model families."""
