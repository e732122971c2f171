"""Job types: one module per type, a payload model and an async handler (the runner discovers them)."""
