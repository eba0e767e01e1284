"""Scale (issue 7): one big municipality, and many municipalities in one run.

1. ``push`` of 50,000 people to one ``file:`` site: the first push (creates the workbook), a
   push with 1 % changed, and a push with nothing to change; wall time and peak RSS of each.
2. ``push`` of 40 sites x 500 people in one run (the config's worker pool), first and again
   with nothing to change; optionally on the bundled emulator (``--emulator``).

Every push runs as ``agii-sync`` in its own process, which reports its peak RSS (VmHWM from
/proc/self/status, else ru_maxrss) and that of its largest child (the export's rows are
validated in a forked process from 64 KiB on, and with several sites the workbooks are parsed
and written in one forked process per core). Goal: peak RSS <= 500 MB.

Run: ``uv run python tests/benchmarks/bench_scale.py [--people 50000] [--sites 40]
[--per-site 500] [--emulator]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agii_sync.config import load_config
from agii_sync.demo_data import write_export, write_synthetic_export

GOAL_MB = 500
MEASURED_CLI = (
    "import atexit, resource, sys\n"
    "def _peak():\n"
    "    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    try:\n"
    "        own = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))"
    ".split()[1])\n"
    "    except (OSError, StopIteration):\n"
    "        pass\n"
    "    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "    sys.stderr.write(f'\\nPEAK_RSS_KB {own} {child}\\n')\n"
    "atexit.register(_peak)\n"
    "from agii_sync.cli import main; main()\n"
)


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    child_mb: float
    code: int


def municipality(i: int, site: str) -> str:
    return f"""
[[municipality]]
id = "gemeente-{i:02d}"
name = "Gemeente {i:02d}"
nis = "{11001 + i}"
postal_codes = ["{1000 + 10 * i}"]
site = "{site}"
protocol_start = 2024-01-01
protocol_end = 2099-12-31
allowed = ["staff@gemeente-{i:02d}.be"]
"""


def write_config(root: Path, sites: list[str], workers: int = 4) -> Path:
    head = (
        f'[agii]\naudit_log = "var/audit.jsonl"\nmax_delete = "100%"\nworkers = {workers}\n'
        "require_access_check = false\n"  # measured: the workbook work
    )
    path = root / "agii-sync.toml"
    for site in sites:
        if site.startswith("file:"):
            (root / site.removeprefix("file:")).mkdir(parents=True, exist_ok=True)
    path.write_text(head + "".join(municipality(i, s) for i, s in enumerate(sites)), "utf-8")
    return path


def push(config: Path, export: Path) -> Measured:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "--config", str(config), "-q", "push", str(export)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    peaks = [line.split() for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    if done.returncode not in (0, 1) or not peaks:
        raise SystemExit(f"push failed ({done.returncode}): {done.stderr[-2000:]}")
    own, child = (int(v) / 1024 for v in peaks[0][1:3])
    return Measured(seconds, own, child, done.returncode)


def changed(rows: list[dict], share: int = 100) -> list[dict]:
    """1 % of the people with a new address."""
    out = [dict(r) for r in rows]
    for r in out[::share]:
        r["straat"] = f"{r['straat']} nieuw"
    return out


def show(label: str, m: Measured) -> None:
    flag = "" if m.peak_mb <= GOAL_MB else f"  ABOVE the goal of {GOAL_MB} MB"
    print(
        f"{label:<38} {m.seconds:7.1f} s   peak RSS {m.peak_mb:6.0f} MB"
        f" (largest child {m.child_mb:4.0f} MB){flag}"
    )


def one_big_site(root: Path, people: int) -> None:
    config = write_config(root, ["file:sites/groot"])
    municipalities = load_config(config).municipalities
    started = time.perf_counter()
    rows = write_synthetic_export(
        root / "export.csv", municipalities, people, seed=3, extra_columns=False
    )
    print(f"export of {len(rows):,} people written in {time.perf_counter() - started:.1f} s")
    write_export(root / "export-changed.csv", changed(rows))
    show(f"push {people:,} people, first (create)", push(config, root / "export.csv"))
    show(f"push {people:,} people, 1 % changed", push(config, root / "export-changed.csv"))
    show(f"push {people:,} people, nothing changed", push(config, root / "export-changed.csv"))
    workbook = next((root / "sites" / "groot").rglob("*.xlsx"))
    print(f"workbook: {workbook.stat().st_size / 1e6:.1f} MB")


def many_sites(root: Path, sites: int, per_site: int, emulator_url: str | None) -> None:
    urls = [
        f"{emulator_url}/sites/gemeente-{i:02d}" if emulator_url else f"file:sites/g{i:02d}"
        for i in range(sites)
    ]
    config = write_config(root, urls)
    municipalities = load_config(config).municipalities
    write_synthetic_export(
        root / "export.csv", municipalities, per_site, seed=4, extra_columns=False
    )
    kind = "emulator" if emulator_url else "file:"
    show(f"push {sites} sites x {per_site} ({kind}), first", push(config, root / "export.csv"))
    show(f"push {sites} sites x {per_site}, nothing changed", push(config, root / "export.csv"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--per-site", type=int, default=500)
    parser.add_argument("--emulator", action="store_true", help="many sites on the emulator")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("AGII_SYNC_ROWKEY_SECRET", "benchmark-secret")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_big:
            (Path(tmp) / "big").mkdir()
            one_big_site(Path(tmp) / "big", args.people)
        (Path(tmp) / "many").mkdir()
        if args.emulator:
            from agii_sync.emulator import Emulator

            with Emulator(Path(tmp) / "emulator") as emulator:
                many_sites(Path(tmp) / "many", args.sites, args.per_site, emulator.base_url)
        else:
            many_sites(Path(tmp) / "many", args.sites, args.per_site, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
