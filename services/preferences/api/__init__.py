"""HTTP API of the preferences service: one router per resource."""
