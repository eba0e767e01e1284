"""Push over the SharePoint REST API (the real client library against the emulator).

Run: ``uv run python tests/benchmarks/bench_sharepoint.py [--sites N] [--per-site P]
[--latency-ms L] [--repeat R]``. The emulator runs as its own process, so its work does not
compete with agii-sync for this interpreter. Prints, side by side:

(a) HTTP requests per site, by kind (from ``/_emulator/stats``), for a push that changes one
    person on every site (goal: at most 4 per site) and for a push that changes nothing
    (goal: no upload);
(b) the wall time of that push with ``--latency-ms`` on every request, with one worker
    (``[agii] workers = 1``) against the default worker count, as a ratio (goal: <= 0.3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.config import AgiiSection
from agii_sync.demo_data import Row, write_export, write_synthetic_export

DEFAULT_WORKERS = AgiiSection().workers
REQUEST_GOAL = 4.0
RATIO_GOAL = 0.3
KINDS = ("contextinfo", "file_props", "file_content_get", "file_content_put", "files_add")


class EmulatorProcess:
    """``python -m agii_sync.emulator`` in a subprocess, with its control endpoints."""

    def __init__(self, root: Path) -> None:
        command = [sys.executable, "-m", "agii_sync.emulator", "--root", str(root), "--port", "0"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.url = _first_line(self.process)
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("the emulator did not start")

    def control(self, method: str, name: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_emulator/{name}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _first_line(process: subprocess.Popen[str]) -> str:
    line: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(15)
    return line[0].strip() if line else ""


def config_text(emulator_url: str, sites: int, workers: int | None) -> str:
    lines = ["[agii]", 'audit_log = "var/audit.jsonl"']
    if workers is not None:
        lines.append(f"workers = {workers}")
    for n in range(sites):
        lines += [
            "",
            "[[municipality]]",
            f'id = "gemeente-{n:02d}"',
            f'name = "Gemeente {n:02d}"',
            f'nis = "{90000 + n}"',
            f'postal_codes = ["{5000 + n}"]',
            f'site = "{emulator_url}/sites/gemeente-{n:02d}"',
            "protocol_start = 2024-01-01",
            "protocol_end = 2099-12-31",
        ]
    return "\n".join(lines) + "\n"


def one_change_per_site(rows: list[Row], variant: int) -> list[Row]:
    """The export with one shared person per site (no attest) on another house number."""
    changed = [dict(row) for row in rows]
    seen: set[object] = set()
    for row in changed:
        if row["nis_code"] not in seen and not row.get("attest_datum"):
            seen.add(row["nis_code"])
            row["huisnummer"] = str(900 + variant)
    return changed


class Bench:
    def __init__(self, root: Path, emulator: EmulatorProcess, sites: int) -> None:
        self.root = root
        self.emulator = emulator
        self.sites = sites
        self.runner = CliRunner()
        self.configs = {workers: self._write_config(workers) for workers in (1, None)}
        # None: no `workers` key, so the default of [agii] workers

    def _write_config(self, workers: int | None) -> Path:
        path = self.root / f"agii-sync-{workers or 'default'}.toml"
        path.write_text(config_text(self.emulator.url, self.sites, workers), encoding="utf-8")
        return path

    def push(self, export: Path, workers: int | None = None) -> None:
        config = self.configs[workers]
        result = self.runner.invoke(app, ["--config", str(config), "-q", "push", str(export)])
        if result.exit_code != 0:
            raise SystemExit(f"push failed with exit {result.exit_code}:\n{result.output}")

    def requests_per_site(self, action: Callable[[], None]) -> dict[str, float]:
        self.emulator.control("POST", "stats/reset")
        action()
        stats = self.emulator.control("GET", "stats")
        per_kind = {
            f"{kind} {method}": count / self.sites
            for kind, methods in stats["requests"].items()
            for method, count in methods.items()
        }
        return per_kind | {"total": stats["total_requests"] / self.sites}

    def latency(self, ms: float) -> None:
        self.emulator.control("POST", "config", {"latency_ms": ms})


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def print_requests(sites: int, changed: dict[str, float], unchanged: dict[str, float]) -> None:
    print(f"(a) HTTP requests per site ({sites} sites)    push with changes   nothing changed")
    kinds = sorted(set(changed) | set(unchanged), key=lambda k: (k == "total", k))
    for kind in kinds:
        print(f"    {kind:<38}{changed.get(kind, 0):>10.2f}{unchanged.get(kind, 0):>18.2f}")
    upload = unchanged.get("file_content_put POST", 0) + unchanged.get("files_add POST", 0)
    print(
        f"    goal: changes <= {REQUEST_GOAL:g} per site "
        f"({'met' if changed['total'] <= REQUEST_GOAL + 1 / sites else 'NOT met'}; "
        f"the form digest is one request per run); "
        f"nothing changed: no upload ({'met' if upload == 0 else 'NOT met'})"
    )


def print_times(sites: int, latency_ms: float, one: list[float], many: list[float]) -> None:
    one_s, many_s = statistics.median(one), statistics.median(many)
    ratio = many_s / one_s
    print(f"(b) push of {sites} sites, {latency_ms:g} ms per request (median of {len(one)})")
    print(f"    workers = 1                    {one_s:8.2f} s")
    print(f"    workers = {DEFAULT_WORKERS:<2} (the default)      {many_s:8.2f} s")
    verdict = "met" if ratio <= RATIO_GOAL else "NOT met"
    print(f"    ratio default / one worker     {ratio:8.2f}  (goal <= {RATIO_GOAL}: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--per-site", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("AGII_SYNC_ROWKEY_SECRET", "benchmark-secret")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        emulator = EmulatorProcess(root / "emulator")
        try:
            bench = Bench(root, emulator, args.sites)
            from agii_sync.config import load_config

            municipalities = load_config(bench.configs[None]).municipalities
            rows = write_synthetic_export(
                root / "base.csv", municipalities, args.per_site, extra_columns=False
            )
            exports = []
            for variant in range(2):
                exports.append(root / f"export-{variant}.csv")
                write_export(exports[-1], one_change_per_site(rows, variant))
            bench.push(exports[0])  # create the workbooks
            changed = bench.requests_per_site(lambda: bench.push(exports[1]))
            unchanged = bench.requests_per_site(lambda: bench.push(exports[1]))

            bench.latency(args.latency_ms)
            one, many = [], []
            pushes = [(1, one), (None, many)]
            for n in range(args.repeat):  # every push flips the house numbers back
                for workers, times in pushes if n % 2 == 0 else pushes[::-1]:
                    export = exports[len(one + many) % 2]
                    times.append(timed(lambda e=export, w=workers: bench.push(e, w)))
        finally:
            emulator.stop()
    print_requests(args.sites, changed, unchanged)
    print()
    print_times(args.sites, args.latency_ms, one, many)
    return 0


if __name__ == "__main__":
    sys.exit(main())
