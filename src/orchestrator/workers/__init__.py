"""Worker processes as an operator sees them: each one's heartbeat in PostgreSQL."""
