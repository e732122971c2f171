"""Tasks: durable job invocations and their history."""
