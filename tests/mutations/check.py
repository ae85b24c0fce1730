"""Mutation check: every deliberate bug of `mutants.MUTANTS`, applied to a temporary copy of the repository, must make
the fast test suite fail.

    python tests/mutations/check.py [--only NAME ...] [--jobs N] [--json PATH]

For each mutant: copy the working tree (git's tracked and untracked, not ignored, files), apply the mutant's edits
(each snippet must occur exactly once), run the fast suite on the copy (`pytest -x`, the shipped-model tests in
tests/tiny left out) with the mutant's likeliest tests first, and record the first test that failed. That test is then
run on an unmutated copy: it must pass there, so a broken or flaky test is never counted as a catch. Prints a
Markdown table; exits 1 unless every mutant was caught.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = Path(__file__).resolve().parent  # holds the first_failure plugin
SLOW_DIRS = ("tests/tiny", "tests/mutations")  # the shipped model's tests (accuracy, training), and this check


class StaleMutant(ValueError):
    """A mutant's snippet no longer occurs exactly once: the code changed and the mutant must be updated."""


@dataclass
class Result:
    name: str
    bug: str
    caught_by: str | None  # the first test that failed on the mutant, None if the whole fast suite passed
    confirmed: bool  # that test passes without the mutant
    tests_run: int
    seconds: float

    @property
    def caught(self) -> bool:
        return self.caught_by is not None and self.confirmed


def working_tree_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    return [name for name in listed if name and (root / name).is_file()]


def copy_tree(source: Path, files: list[str], target: Path) -> Path:
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)
    return target


def fast_suite_in_order(copy: Path, first: tuple[str, ...]) -> list[str]:
    """Test files of the fast suite, those in `first` (files or folders) first. pytest keeps the order of file
    arguments; a folder argument that holds them would be collected in its own order."""
    files = sorted(
        path.relative_to(copy).as_posix()
        for path in (copy / "tests").rglob("test_*.py")
        if not path.relative_to(copy).as_posix().startswith(SLOW_DIRS)
    )
    ordered = []
    for entry in first:
        ordered += [name for name in files if name.startswith(entry + "/")] if (copy / entry).is_dir() else [entry]
    return ordered + [name for name in files if name not in ordered]


def mutated_texts(mutant: Mutant, read) -> dict[str, str]:
    """path -> mutated text; `read(path)` gives the original text."""
    texts: dict[str, str] = {}
    for edit in mutant.edits:
        text = texts.get(edit.path) or read(edit.path)
        found = text.count(edit.old)
        if found != 1:
            raise StaleMutant(
                f"Mutant {mutant.name!r}: the snippet {edit.old!r} occurs {found} times in {edit.path}, not once. The "
                "code changed: update the mutant in tests/mutations/mutants.py so that it still makes its bug."
            )
        texts[edit.path] = text.replace(edit.old, edit.new)
    return texts


def run_pytest(copy: Path, arguments: list[str], timeout: float) -> tuple[list[dict], str]:
    """Run pytest in `copy` with the first_failure plugin; returns its records and pytest's last output lines."""
    handle, name = tempfile.mkstemp(prefix="storm-mutation-report-", suffix=".jsonl")
    os.close(handle)
    report = Path(name)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(copy / "src"), str(PLUGIN_DIR)]),
        "STORM_MUTATION_REPORT": str(report),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "first_failure", *arguments]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        tail = done.stdout[-2000:]
    except subprocess.TimeoutExpired:
        tail = f"timed out after {timeout:.0f} s"
    records = [json.loads(line) for line in report.read_text().splitlines()]
    report.unlink()
    return records, tail


def check_mutant(mutant: Mutant, files: list[str], clean: Path, timeout: float, keep: bool) -> Result:
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix=f"storm-mutant-{mutant.name}-"))
    try:
        copy = copy_tree(clean, files, folder)  # from the snapshot: edits made to the tree meanwhile do not leak in
        for path, text in mutated_texts(mutant, lambda p: (copy / p).read_text()).items():
            (copy / path).write_text(text)
        records, tail = run_pytest(copy, ["-x", *fast_suite_in_order(copy, mutant.first)], timeout)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    failed = [record["failed"] for record in records if "failed" in record]
    caught_by = failed[0] if failed else None
    if caught_by is None and "passed" not in tail:
        print(f"{mutant.name}: no test failed, but pytest did not finish normally:\n{tail}", file=sys.stderr)
    confirmed = False
    if caught_by is not None:
        clean_records, _ = run_pytest(clean, [caught_by], timeout)
        confirmed = bool(clean_records) and not any("failed" in record for record in clean_records)
    tests_run = sum("passed" in record for record in records) + len(failed)
    return Result(mutant.name, mutant.bug, caught_by, confirmed, tests_run, time.perf_counter() - start)


def markdown(results: list[Result], seconds: float) -> str:
    caught = sum(result.caught for result in results)
    lines = [
        f"{caught}/{len(results)} mutants caught in {seconds / 60:.1f} min.",
        "",
        "| mutant | deliberate bug | caught by (first failing test) | tests run | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        verdict = f"`{r.caught_by}`" if r.caught else "**not caught**"
        if r.caught_by is not None and not r.confirmed:
            verdict += f" (`{r.caught_by}` also fails without the mutant)"
        lines.append(f"| {r.name} | {r.bug} | {verdict} | {r.tests_run} | {r.seconds:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--jobs", type=int, default=1, help="mutants checked at once (default 1)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies")
    args = parser.parse_args(argv)
    known = {mutant.name: mutant for mutant in MUTANTS}
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"unknown mutants {unknown}; known: {', '.join(known)}")
    selected = [known[name] for name in args.only] if args.only else list(MUTANTS)
    for mutant in selected:  # every mutant still applies, before anything runs
        mutated_texts(mutant, lambda path: (ROOT / path).read_text())

    start = time.perf_counter()
    files = working_tree_files(ROOT)
    with tempfile.TemporaryDirectory(prefix="storm-unmutated-") as folder:
        clean = copy_tree(ROOT, files, Path(folder))
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(check_mutant, m, files, clean, args.timeout, args.keep) for m in selected]
            results = []
            for future in futures:
                results.append(future.result())
                result = results[-1]
                print(f"{result.name}: {'caught by ' + result.caught_by if result.caught else 'NOT CAUGHT'} "
                      f"({result.seconds:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    print(markdown(results, seconds))
    if args.json:
        payload = {"seconds": seconds, "results": [{**asdict(r), "caught": r.caught} for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(result.caught for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
