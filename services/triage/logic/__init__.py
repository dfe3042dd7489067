"""Pure triage logic: redaction, duplicates, quality, feedback, attribution, uncertainty,
policy, budgets and the decision itself. No I/O, no event loop."""
