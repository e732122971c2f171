"""Completion callbacks: a task's end POSTed, signed, to the URL it names."""
