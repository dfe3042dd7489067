"""HTTP API of the annotation service: one router per resource."""
