"""Start-up time of `agii-sync`: `--version`, `--help` of commands, and a command's fixed cost.

Run: ``uv run python tests/benchmarks/bench_startup.py [--repeat R]``. Each figure is the median
wall time of R fresh processes, measured side by side in one run with the bare interpreter
(``python -c pass``) and with "everything imported up front" (what every command paid before
the imports were made lazy), so the ratios hold on a busy machine too. Goals: `--version` and
`--help` ≤ 0.3 s; the fixed start-up cost of a command (imports and config, before any site is
read) ≤ 0.5 s.

Bytecode is cached in a private folder (``PYTHONPYCACHEPREFIX``), as an installed tool has its
``.pyc`` files; a shell with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile every module
of every run. Then ``python -X importtime`` of `--version` and of `list` is summarised: the
modules that cost most, cumulative.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
[agii]
audit_log = "var/audit.jsonl"

[[municipality]]
id = "mechelen"
name = "Mechelen"
nis = "12025"
postal_codes = ["2800"]
site = "file:sites/mechelen"
protocol_start = 2024-01-01
protocol_end = 2099-12-31
allowed = ["staff@mechelen.be"]
"""

CLI = "import sys; from agii_sync.cli import main; sys.argv[0] = 'agii-sync'; main()"
# What every command imported before: the engine (openpyxl, pydantic models), auth (msal,
# keyring, requests), the SharePoint client, rich.
EAGER = (
    "import agii_sync.cli, agii_sync.engine, agii_sync.auth, agii_sync.output, msal, keyring, "
    "openpyxl, office365.sharepoint.client_context, rich.console, agii_sync.runs.push"
)


TOP = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\S+)")  # top-level imports only


def environment(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    env["NO_COLOR"] = "1"
    return env


def wall(command: list[str], env: dict[str, str], cwd: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime(args: list[str], env: dict[str, str], cwd: Path, top: int = 8) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CLI, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if found and len(found[3]) <= 3:  # top-level and first-level imports only
            rows.append((int(found[2]), found[4]))
    total = sum(int(f[2]) for f in map(TOP.match, done.stderr.splitlines()) if f)
    best = sorted(rows, reverse=True)[:top]
    return [f"    {us / 1000:7.1f} ms  {name}" for us, name in best] + [
        f"    ({len(rows)} imports listed, cumulative time of the largest shown)",
        f"    total of the top-level imports: {total / 1000:.0f} ms" if total else "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "agii-sync.toml").write_text(CONFIG, encoding="utf-8")
        (root / "sites" / "mechelen").mkdir(parents=True)
        env = environment(root / "pycache")
        python = [sys.executable]
        cases = {
            "python -c pass (interpreter floor)": [*python, "-c", "pass"],
            "agii-sync --version": [*python, "-c", CLI, "--version"],
            "agii-sync --help": [*python, "-c", CLI, "--help"],
            "agii-sync push --help": [*python, "-c", CLI, "push", "--help"],
            "agii-sync status-update --help": [*python, "-c", CLI, "status-update", "--help"],
            "agii-sync list (folder site, no workbook)": [
                *python,
                "-c",
                CLI,
                "list",
                "--site",
                "mechelen",
                "--format",
                "csv",
            ],
            "agii-sync check (folder site, no workbook)": [*python, "-c", CLI, "check"],
            "everything imported up front (before)": [*python, "-c", EAGER],
        }
        for command in cases.values():  # warm up: bytecode cached, files in the page cache
            subprocess.run(command, env=env, cwd=root, capture_output=True, check=False)
        figures = {name: wall(command, env, root, repeat) for name, command in cases.items()}
        floor = figures["python -c pass (interpreter floor)"]
        before = figures["everything imported up front (before)"]
        print(f"median of {repeat} runs each, measured side by side\n")
        print(f"{'':46} {'wall':>8} {'× python':>9} {'× before':>9}")
        for name, seconds in figures.items():
            print(f"{name:46} {seconds:7.3f}s {seconds / floor:8.1f}× {seconds / before:8.2f}×")
        print("\npython -X importtime agii-sync --version (largest, cumulative):")
        print("\n".join(importtime(["--version"], env, root)))
        print("\npython -X importtime agii-sync list (largest, cumulative):")
        print("\n".join(importtime(["list", "--site", "mechelen", "--format", "csv"], env, root)))


if __name__ == "__main__":
    main()
