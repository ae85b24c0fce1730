"""pytest plugin for the mutation check: writes to $STORM_MUTATION_REPORT, as JSON lines, the id of every test that
failed or errored (collection errors included) and the number of tests that passed."""

import json
import os


def _write(record: dict) -> None:
    with open(os.environ["STORM_MUTATION_REPORT"], "a") as file:
        file.write(json.dumps(record) + "\n")


def pytest_runtest_logreport(report):
    if report.failed:
        _write({"failed": report.nodeid, "when": report.when})
    elif report.passed and report.when == "call":
        _write({"passed": report.nodeid})


def pytest_collectreport(report):
    if report.failed:
        _write({"failed": report.nodeid, "when": "collect"})
