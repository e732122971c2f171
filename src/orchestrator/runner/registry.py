"""Job types discovered from packages (`jobs` by default): adding a job is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from orchestrator.runner.job import JobType

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


class Registry:
    """The job types by name. A plain class rather than a dict so that Litestar, which validates
    injected dependencies, treats it as one opaque object."""

    def __init__(self, types: dict[str, JobType[Any]]) -> None:
        self._types = types

    def get(self, name: str) -> JobType[Any] | None:
        return self._types.get(name)

    def __getitem__(self, name: str) -> JobType[Any]:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


def discover(packages: Iterable[str]) -> Registry:
    """Import every module of each package and collect its module-level `job`."""
    found: dict[str, JobType[Any]] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{module_info.name}")
            job = getattr(module, "job", None)
            if not isinstance(job, JobType):
                continue
            if job.name in found:
                raise RuntimeError(f"job type {job.name!r} is declared twice ({module.__name__})")
            found[job.name] = job
    return Registry(found)
