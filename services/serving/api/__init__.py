"""HTTP routers of the serving service."""
