"""`make mutants`: break the product on purpose, one mutant at a time, and check that the tests
named for each mutant catch it.

Each mutant of `catalog.py` is applied to a fresh copy of the project (the files git knows,
committed or not), and its tests run there against the same servers as `make test`. A mutant
whose tests pass has survived: a promise no test guards. One that no longer applies (its code
moved) is an error too, so the catalog cannot rot quietly. Exit status 1 in either case.

    python -m tests.mutants.run [--quick] [--only TEXT] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]


def copy_project(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the work tree is still listed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def apply(mutant: Mutant, tree: Path) -> str | None:
    """Mutate the copy; why not, if it cannot be."""
    path = tree / mutant.path
    text = path.read_text()
    found = text.count(mutant.old)
    if found == 0 or (found > 1 and not mutant.every):
        return f"{mutant.path}: the code to mutate occurs {found} times"
    path.write_text(text.replace(mutant.old, mutant.new))
    return None


def run_tests(mutant: Mutant, tree: Path, timeout_s: float) -> tuple[int, str]:
    # The copy's code first: the project is installed in editable mode, as plain paths.
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tree / "src"), str(tree)])}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "--basetemp",
        str(tree / ".pytest-tmp"),
        *mutant.tests,
    ]
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout_s:g} s"
    return done.returncode, (done.stdout + done.stderr)[-3000:]


def _verdict(code: int | None, output: str) -> str:
    """Killed only by a test that failed: an error (a fixture, an import, the servers away)
    exits 1 too, and would pass for a kill."""
    summaries = [
        line for line in output.splitlines() if re.search(r"\b(failed|passed|errors?)\b.* in [\d.]+s", line)
    ]
    summary = summaries[-1] if summaries else ""
    if code == 1 and re.search(r"\b\d+ failed\b", summary) and not re.search(r"\b\d+ errors?\b", summary):
        return "killed"
    return "SURVIVED" if code == 0 else "ERROR"


def baseline(chosen: list[Mutant], timeout_s: float) -> str | None:
    """The tests the mutants name must pass on the project as it is: else a kill proves nothing."""
    tests = tuple(dict.fromkeys(test for mutant in chosen for test in mutant.tests))
    with tempfile.TemporaryDirectory(prefix="mutant-baseline-") as folder:
        copy_project(Path(folder))
        code, output = run_tests(Mutant("baseline", "", "", "", tests), Path(folder), timeout_s)
    return None if code == 0 else output


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the mutants integration tests kill")
    parser.add_argument("--only", default="", help="only the mutants whose name contains this")
    parser.add_argument("--timeout", type=float, default=600.0, help="per mutant, seconds")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if (m.quick or not args.quick) and args.only in m.name]
    if not chosen:
        print("no mutant chosen", file=sys.stderr)
        return 1
    if (broken := baseline(chosen, args.timeout * 2)) is not None:
        print("the mutants' tests fail on the unmutated project:", broken, sep="\n", file=sys.stderr)
        return 1
    failures = 0
    for number, mutant in enumerate(chosen, start=1):
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="mutant-") as folder:
            tree = Path(folder)
            copy_project(tree)
            problem = apply(mutant, tree)
            code, output = (None, "") if problem else run_tests(mutant, tree, args.timeout)
        verdict = "ERROR" if problem else _verdict(code, output)
        print(f"[{number}/{len(chosen)}] {verdict:8} {time.monotonic() - started:5.1f} s  {mutant.name}")
        print(f"{'':21}by {', '.join(mutant.tests)}")
        if verdict != "killed":
            failures += 1
            print(problem or output, file=sys.stderr)
    print(f"{len(chosen) - failures} of {len(chosen)} mutants killed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
