"""Pure release logic: statistics, decision rules, live-signal reducers and release state.

No broker, database or clock is needed to test any of it.
"""
