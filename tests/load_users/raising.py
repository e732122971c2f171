"""A Locust user whose check raises after its request was marked a success: what the load
report must catch although Locust counts no failure."""

from __future__ import annotations

from locust import HttpUser, constant, task

import load.locustfile  # noqa: F401  (the suite's options, and its summary written at exit)


class RaisingCheck(HttpUser):
    wait_time = constant(0.05)

    @task
    def read_then_break(self) -> None:
        with self.client.get("/", catch_response=True) as response:
            response.success()
        raise KeyError("a check that broke after its request passed")
