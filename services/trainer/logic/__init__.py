"""Pure trainer logic: the evaluation gate and the planning decisions around a job. No model,
database or broker is needed to test any of it."""
