"""Worker processes: spawn N, respawn any that crash, stop them all on request."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)


def _worker_main(concurrency: int) -> None:
    import uvloop

    from orchestrator.logs import configure_logging
    from orchestrator.runner.worker import serve
    from orchestrator.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    uvloop.run(serve(settings, concurrency))


class WorkerProcesses:
    """A fixed-size set of worker processes. A process that exits non-zero (SIGKILL, a crash) is
    replaced; one that exits 0 was told to stop and is not."""

    def __init__(self, count: int, concurrency: int) -> None:
        self.count, self.concurrency = count, concurrency
        self.processes: list[BaseProcess] = []
        self.stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # no spawn may slip in between stop()'s check and its SIGTERMs
        self._started: list[float] = []
        self._backoff_s: list[float] = []
        self._respawn_at: dict[int, float] = {}

    def start(self) -> None:
        self.processes = [self._spawn(index) for index in range(self.count)]
        self._started = [time.monotonic()] * self.count
        self._backoff_s = [0.0] * self.count
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=_worker_main, args=(self.concurrency,), name=f"orchestrator-worker-{index + 1}"
        )
        process.start()
        logger.info("started %s (pid %s)", process.name, process.pid)
        return process

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            for index, process in enumerate(self.processes):
                if process.exitcode in (None, 0):
                    continue
                now = time.monotonic()
                if index not in self._respawn_at:
                    # One that dies young (bad settings, a server away) comes back ever more slowly.
                    young = now - self._started[index] < 30
                    self._backoff_s[index] = min(max(self._backoff_s[index] * 2, 1.0), 30.0) if young else 0.0
                    self._respawn_at[index] = now + self._backoff_s[index]
                    logger.warning(
                        "%s exited with %s; restarting in %.0f s",
                        process.name,
                        process.exitcode,
                        self._backoff_s[index],
                    )
                if now >= self._respawn_at[index]:
                    with self._lock:
                        if self.stopping.is_set():
                            return
                        self.processes[index] = self._spawn(index)
                    self._started[index] = time.monotonic()
                    del self._respawn_at[index]

    def stop(self, timeout_s: float) -> None:
        """SIGTERM every process (they finish or hand back their jobs), SIGKILL what outlives the timeout."""
        with self._lock:
            self.stopping.set()
            for process in self.processes:
                if process.is_alive() and process.pid is not None:
                    process.terminate()
        for process in self.processes:
            process.join(timeout_s)
            if process.is_alive():
                logger.warning("%s did not stop in %.0f s; killing it", process.name, timeout_s)
                process.kill()
                process.join()


def run_until_signalled(workers: WorkerProcesses, timeout_s: float) -> None:
    """`orchestrator worker`: block until SIGTERM or SIGINT, then stop the workers."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    workers.start()
    done.wait()
    workers.stop(timeout_s)
