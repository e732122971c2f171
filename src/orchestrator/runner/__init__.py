"""The job runner: job discovery, SAQ workers, the reconciler."""
