"""A job package whose module declares a schedule: only the tests of schedules load it."""
