"""HTTP routes, one module per resource: rank, health, models, admin, metrics."""
