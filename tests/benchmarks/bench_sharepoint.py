"""Push to SharePoint sites (the real client library against the emulator, Graph and REST).

Run: ``uv run python tests/benchmarks/bench_sharepoint.py [--sites N] [--per-site P]
[--latency-ms L] [--workers W] [--repeat R]``. The emulator runs as its own process, so its
work does not compete with agii-sync for this interpreter. Prints, side by side:

(a) HTTP requests per site, by kind (from ``/_emulator/stats``), for a push that changes one
    person on every site (goal: at most 8 per site: 2 to find the site and its library once
    per run, 2 to read the workbook with its eTag, 4 to write it: upload session with
    if-match, the bytes, the eTag read again, the commit) and for a push that changes nothing
    (goal: no upload);
(b) the wall time of a push that changes one person on every site, with ``--latency-ms`` on
    every request, with one worker (``[agii] workers = 1``) against the default worker count
    (or ``--workers``), as a ratio (goal: <= 0.3). Also the CPU time agii-sync used, its worker
    processes included: the workbook work (openpyxl) holds the GIL, so it runs in one forked
    process per core, and that CPU time divided by the cores is the floor of a parallel push.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.config import AgiiSection, load_config
from agii_sync.demo_data import Row, write_export, write_synthetic_export
from agii_sync.parallel import usable_cores

DEFAULT_WORKERS = AgiiSection().workers
REQUEST_GOAL = 8.0
RATIO_GOAL = 0.3


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
        if self.process.stdout is not None:
            self.process.stdout.close()


def _first_line(process: subprocess.Popen[str]) -> str:
    line: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(15)
    return line[0].strip() if line else ""


def config_text(emulator_url: str, sites: int, workers: int | None) -> str:
    # The access check's own requests are left out: measured is the workbook work.
    lines = ["[agii]", 'audit_log = "var/audit.jsonl"', "require_access_check = false"]
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
            f'allowed = ["staff@gemeente-{n:02d}.be"]',
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


@dataclass
class Timing:
    wall: float
    cpu: float  # CPU seconds of this process (all threads) and of its finished workers


def cpu_seconds() -> float:
    """This process and the children it has waited for (the emulator is still running)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Bench:
    """One emulator, ``sites`` municipalities, and two exports that differ on every site."""

    def __init__(self, root: Path, emulator: EmulatorProcess, sites: int, per_site: int) -> None:
        self.root = root
        self.emulator = emulator
        self.sites = sites
        self.runner = CliRunner()
        self.exports = self._write_exports(per_site)
        self._current = 0  # the export the sites hold now
        self.push(self.exports[0], workers=None)  # create the workbooks

    def _config(self, workers: int | None) -> Path:
        """A config with ``workers`` (None: no key, so the default)."""
        path = self.root / f"agii-sync-{workers or 'default'}.toml"
        if not path.exists():
            path.write_text(config_text(self.emulator.url, self.sites, workers), "utf-8")
        return path

    def _write_exports(self, per_site: int) -> list[Path]:
        municipalities = load_config(self._config(None)).municipalities
        base = self.root / "base.csv"
        rows = write_synthetic_export(base, municipalities, per_site, extra_columns=False)
        exports = [self.root / f"export-{variant}.csv" for variant in range(2)]
        for variant, path in enumerate(exports):
            write_export(path, one_change_per_site(rows, variant))
        return exports

    def push(self, export: Path, workers: int | None) -> None:
        config = self._config(workers)
        result = self.runner.invoke(app, ["--config", str(config), "-q", "push", str(export)])
        if result.exit_code != 0:
            raise SystemExit(f"push failed with exit {result.exit_code}:\n{result.output}")

    def push_a_change(self, workers: int | None) -> Timing:
        """Push the other export: one person changes on every site."""
        self._current = 1 - self._current
        export = self.exports[self._current]
        wall, cpu = time.perf_counter(), cpu_seconds()
        self.push(export, workers)
        return Timing(time.perf_counter() - wall, cpu_seconds() - cpu)

    def push_nothing_new(self) -> None:
        self.push(self.exports[self._current], workers=None)

    def requests_per_site(self, action: Callable[[], Any]) -> dict[str, float]:
        self.emulator.control("POST", "stats/reset")
        action()
        stats = self.emulator.control("GET", "stats")
        per_kind = {
            f"{kind} {method}": count / self.sites
            for kind, methods in stats["requests"].items()
            for method, count in methods.items()
        }
        return per_kind | {"total": stats["total_requests"] / self.sites}

    def set_latency(self, ms: float) -> None:
        self.emulator.control("POST", "config", {"latency_ms": ms})


def measure_times(bench: Bench, workers: int | None, repeat: int) -> tuple[list[Timing], ...]:
    """Alternate one worker and many, so that a busy machine hurts both alike."""
    one: list[Timing] = []
    many: list[Timing] = []
    order = [(1, one), (workers, many)]
    for n in range(repeat):
        for count, timings in order if n % 2 == 0 else order[::-1]:
            timings.append(bench.push_a_change(count))
    return one, many


def print_requests(sites: int, changed: dict[str, float], unchanged: dict[str, float]) -> None:
    print(f"(a) HTTP requests per site ({sites} sites)     push with changes   nothing changed")
    kinds = sorted(set(changed) | set(unchanged), key=lambda k: (k == "total", k))
    for kind in kinds:
        print(f"    {kind:<38}{changed.get(kind, 0):>10.3f}{unchanged.get(kind, 0):>18.3f}")
    uploads = unchanged.get("upload_session POST", 0) + unchanged.get("upload_put PUT", 0)
    per_site_work = changed["total"] - changed.get("contextinfo POST", 0)
    met = "met" if per_site_work <= REQUEST_GOAL else "NOT met"
    print(
        f"    goal: at most {REQUEST_GOAL:g} per site with changes: {met} "
        f"({per_site_work:g} per site); "
        f"no upload when nothing changed: {'met' if uploads == 0 else 'NOT met'}"
    )


def print_times(args: argparse.Namespace, one: list[Timing], many: list[Timing]) -> None:
    workers = args.workers or DEFAULT_WORKERS
    label = f"workers = {workers}" + ("" if args.workers else " (the default)")
    wall_1, wall_n = (statistics.median(t.wall for t in ts) for ts in (one, many))
    cpu_1, cpu_n = (statistics.median(t.cpu for t in ts) for ts in (one, many))
    ratio = wall_n / wall_1
    print(
        f"(b) push of {args.sites} sites x {args.per_site} people, one change per site, "
        f"{args.latency_ms:g} ms per request (median of {args.repeat})"
    )
    print(f"    {'':<28}{'wall':>9}{'CPU of agii-sync':>20}")
    print(f"    {'workers = 1':<28}{wall_1:>7.2f} s{cpu_1:>18.2f} s")
    print(f"    {label:<28}{wall_n:>7.2f} s{cpu_n:>18.2f} s")
    verdict = "met" if ratio <= RATIO_GOAL else "NOT met"
    print(f"    ratio (wall) {ratio:.2f}  (goal <= {RATIO_GOAL}: {verdict})")
    cores = usable_cores()
    print(
        f"    floor: CPU / {cores} core(s) / wall of one worker = {cpu_n / cores / wall_1:.2f} "
        "(the workbook work runs in one process per core)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--per-site", type=int, default=25)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--workers", type=int, default=None, help="default: [agii] workers")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AGII_SYNC_ROWKEY_SECRET", "benchmark-secret")
    with tempfile.TemporaryDirectory() as tmp:
        emulator = EmulatorProcess(Path(tmp) / "emulator")
        try:
            bench = Bench(Path(tmp), emulator, args.sites, args.per_site)
            changed = bench.requests_per_site(lambda: bench.push_a_change(None))
            unchanged = bench.requests_per_site(bench.push_nothing_new)
            bench.set_latency(args.latency_ms)
            one, many = measure_times(bench, args.workers, args.repeat)
        finally:
            emulator.stop()
    print_requests(args.sites, changed, unchanged)
    print()
    print_times(args, one, many)
    return 0


if __name__ == "__main__":
    sys.exit(main())
