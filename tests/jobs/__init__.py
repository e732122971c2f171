"""Job types only the tests use: the workers under test load them with JOB_PACKAGES."""
