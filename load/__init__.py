"""The load suite: Locust users, the runner that breaks things under them, the verifier."""

# The old system's run: 2,739 requests by 50 users in 600 s is one per 11 s each, 8.9 s of it
# waiting for the answer, so its users thought about 2 s between requests.
OLD_PROFILE_THINK_TIME = "1:3"
