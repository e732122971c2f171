"""Schedules: tasks made on a cron, one per tick, however many workers tick them."""
