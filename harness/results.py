"""The results table of a run: case x mode x variant, at a glance, on the terminal and as JSON.

Each collected case carries its cell (category, case, mode, variant, target) in its
user_properties, so that the controller of an xdist run, which sees only reports,
can place every outcome; JUnit XML (--junitxml) carries the same properties. The
terminal shows, per category, the count of each outcome per column and the rows
of the cases that failed, errored or were expected to fail somewhere (skips are counted only);
`--splice-report FILE` writes every cell as JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

CELL = "splice_cell"
LETTER = {"passed": "P", "failed": "F", "error": "E", "skipped": "s", "xfailed": "x", "xpassed": "X"}
WORST = ["error", "failed", "xpassed", "passed", "xfailed", "skipped"]  # a later phase may only worsen
QUIET = {"passed", "skipped"}  # counted per column; their rows are in the JSON, not on the terminal
RESULTS = pytest.StashKey[dict[str, dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("sosplice").addoption(
        "--splice-report", metavar="FILE", default=None,
        help="write the results table (every case x mode x variant x target and its outcome) as JSON")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = {}
    config.pluginmanager.register(Collector(config), "splice-results")


def cell_of(item: pytest.Item, target: str) -> dict[str, str]:
    """Where an item sits in the table: its category (tests/<dir>), case, mode and variant."""
    parts = Path(item.nodeid.split("::", 1)[0]).parts
    category = parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0] if parts else "?"
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    case = params.get("case")
    name = getattr(case, "id", None) or (str(case) if case is not None and isinstance(case, str) else None)
    if name is None:  # no case parameter: the function, and its other parameters' ids
        name = item.name
    return {"category": category, "case": str(name), "mode": str(params.get("mode", "-")),
            "variant": str(params.get("variant", "-")), "target": target}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    target = str(config.getoption("--splice-target", "local"))
    for item in items:
        item.user_properties.append((CELL, cell_of(item, target)))


def outcome(report: pytest.TestReport) -> str | None:
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        if report.failed:
            return "failed" if report.when == "call" else "error"
        return "skipped" if report.skipped else "passed"
    if report.when == "teardown" and report.failed:
        return "error"
    return None


class Collector:
    """Keeps the worst outcome of each case's phases, in the controller (and in a plain run)."""

    def __init__(self, config: pytest.Config) -> None:
        self.results = config.stash[RESULTS]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        got = outcome(report)
        cell = dict(report.user_properties).get(CELL)
        if got is None or not isinstance(cell, dict):
            return
        before = self.results.get(report.nodeid, {}).get("outcome")
        if before is None or WORST.index(got) < WORST.index(before):
            self.results[report.nodeid] = {**cell, "outcome": got, "nodeid": report.nodeid}


def columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({column(r) for r in rows}, key=lambda c: (c.count("/"), c))


def column(r: dict[str, Any]) -> str:
    name = "/".join(x for x in (r["mode"], r["variant"]) if x != "-") or "-"
    return f"{name}@{r['target']}" if r["target"] != "local" and len(r["target"]) < 40 else name


def table(results: list[dict[str, Any]]) -> list[str]:
    """Per category: outcome counts per column, then the rows of the cases not all passed or skipped."""
    lines = [f"{k} {v}" for k, v in LETTER.items()]
    lines = ["legend: " + ", ".join(lines)]
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_category[r["category"]].append(r)
    for category in sorted(by_category):
        rows = by_category[category]
        cols = columns(rows)
        width = max([len(category), *(len(r["case"]) for r in rows if r["outcome"] != "passed")]) + 2
        lines.append("")
        lines.append(f"{category:<{width}}" + " ".join(f"{c:>14}" for c in cols))
        counts: dict[str, dict[str, int]] = {c: defaultdict(int) for c in cols}
        cases: dict[str, dict[str, str]] = defaultdict(dict)
        for r in rows:
            counts[column(r)][r["outcome"]] += 1
            cases[r["case"]][column(r)] = r["outcome"]
        lines.append(f"{'  (counts)':<{width}}" + " ".join(
            f"{' '.join(f'{n}{LETTER[k]}' for k, n in sorted(counts[c].items(), key=lambda kv: WORST.index(kv[0]))):>14}"
            for c in cols))
        for case in sorted(cases):
            cells = cases[case]
            if all(v in QUIET for v in cells.values()):
                continue
            lines.append(f"  {case:<{width - 2}}" + " ".join(f"{LETTER[cells[c]] if c in cells else '.':>14}"
                                                          for c in cols))
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    results = sorted(config.stash.get(RESULTS, {}).values(),
                     key=lambda r: (r["category"], r["case"], r["mode"], r["variant"]))
    if not results or hasattr(config, "workerinput"):
        return
    terminalreporter.write_sep("=", "splice results: case x mode x variant")
    for line in table(results):
        terminalreporter.write_line(line)
    path = config.getoption("--splice-report")
    if path:
        Path(path).write_text(json.dumps({"results": results}, indent=1) + "\n")
        terminalreporter.write_line(f"results table as JSON: {path}")
