"""The preferences service: ask end users which of two answers is better.

It consumes ``preference.requests``, obtains a second answer to the same conversation (from the
canary when one is live, else a sampled alternative from the release), stores a pending
request and delivers it to apps (pull: ``GET /v1/preferences/pending``; push: signed
webhooks). Answers are published on ``preference.answers``. See README.md.
"""
