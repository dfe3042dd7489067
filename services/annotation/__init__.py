"""The annotation service: people, an LLM judge and an LLM teacher label annotation tasks.

It consumes ``annotation.tasks`` (and, for the judge, ``traces.triaged`` items routed to it),
keeps a priority queue with Redis leases, serves a server-rendered page and a scriptable API,
computes agreement, sends disagreements to reviewers, calibrates the judge against people and
publishes every label on ``annotation.labels``. See README.md.
"""
