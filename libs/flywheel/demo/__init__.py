"""The demo's world: a fictional shop whose support assistant the flywheel keeps improving.

``flywheel.demo.shop`` defines questions with checkable answers, agent tasks with simulated
tools, and noisy user feedback, all deterministic given a seed.
"""
