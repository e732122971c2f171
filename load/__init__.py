"""The load suite: Locust users, the runner that breaks things under them, the verifier."""

# The old system's run: 2,739 requests by 50 users in 600 s is one per 11 s each, 8.9 s of it
# waiting for the answer, so its users thought about 2 s between requests.
OLD_PROFILE_THINK_TIME = "1:3"

# The load key's own rate: counted like any key's (the Redis round trip is in the figures), and
# far above what two cores serve, so it never throttles the run.
LOAD_RATE_LIMIT = "5000/second"
API_KEY_ENV = "LOCUST_API_KEY"
