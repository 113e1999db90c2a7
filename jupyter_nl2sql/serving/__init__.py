"""Serving a team: the Ray Serve model service and Prometheus metrics."""
