"""The in-place workbook editor against openpyxl load + save of the same workbook, in one run.

10,000 people on one folder site: first push (creates the workbook), a push that changes
nothing, a push with 1 % changed (plus 20 new, 10 gone), and status-update of 1 row and of 500
rows (``--from``), each next to a bare openpyxl load + save of the workbook the command read.
Goals (issue 12 / issue 11 item 3): no-change push <= 0.3x, 1 % push <= 0.5x, first push
<= 0.8x, status-update of 1 row <= 0.1x, of 500 rows <= 0.15x. Prints medians with min-max.

``--scale 50000`` also runs the pushes of 50,000 people in a subprocess each and reports the
peak RSS of the whole process tree (the CLI and its forked children; goal <= 300 MB).

Run: ``uv run python tests/benchmarks/bench_editor.py [--people N] [--repeat R] [--scale N]``;
``--only-status`` runs only the two status-update cases.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.config import load_config
from agii_sync.demo_data import write_export, write_synthetic_export

sys.path.insert(0, str(Path(__file__).parent))
from bench_push import CONFIG, _night  # noqa: E402
from bench_scale import MEASURED_CLI  # noqa: E402

GOALS = {
    "first push": 0.8,
    "push, nothing changed": 0.3,
    "push, 1 % changed": 0.5,
    "status-update, 1 row": 0.1,
    "status-update, 500 rows": 0.15,
}
STATUSES = ("Gecontacteerd", "Activiteit gestart")
RSS_GOAL_MB = 300


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def load_and_save(content: bytes) -> float:
    return timed(lambda: openpyxl.load_workbook(io.BytesIO(content)).save(io.BytesIO()))


class Bench:
    def __init__(self, root: Path, people: int) -> None:
        self.root = root
        self.config = root / "agii-sync.toml"
        self.config.write_text(CONFIG, encoding="utf-8")
        (root / "sites/mechelen").mkdir(parents=True)
        self.rows = write_synthetic_export(
            root / "export0.csv",
            load_config(self.config).municipalities,
            people,
            seed=1,
            extra_columns=False,
        )
        self.workbook = (
            root / "sites/mechelen/Gedeelde documenten/Participatietraject/inburgeraars.xlsx"
        )
        self.runner = CliRunner()
        self.times: dict[str, list[float]] = {name: [] for name in GOALS}
        self.ratios: dict[str, list[float]] = {name: [] for name in GOALS}

    def cli(self, *args: str) -> None:
        result = self.runner.invoke(app, ["--config", str(self.config), "-q", *args])
        assert result.exit_code in (0, 1), result.output

    def measure(self, name: str, *args: str) -> None:
        """The command, then openpyxl load + save of the workbook it read (same run)."""
        before = self.workbook.read_bytes() if self.workbook.exists() else None
        took = timed(lambda: self.cli(*args))
        base = load_and_save(before if before is not None else self.workbook.read_bytes())
        self.times[name].append(took)
        self.ratios[name].append(took / base)

    def round(self, i: int, *, first: bool, only_status: bool = False) -> None:
        export = self.root / "export0.csv"
        if only_status:
            if first:
                self.cli("push", str(export))
            self.status_updates(i)
            return
        if first:
            self.workbook.unlink(missing_ok=True)
            self.measure("first push", "push", str(export))
        self.measure("push, nothing changed", "push", str(export))
        night = self.root / f"export{i}.csv"
        write_export(night, _night(self.rows, i))
        self.measure("push, 1 % changed", "push", str(night))
        write_export(export, self.rows)  # back to the full export for the next round
        self.cli("push", str(export))
        self.status_updates(i)

    def status_updates(self, i: int) -> None:
        ids = self.row_ids()
        status = STATUSES[i % 2]
        self.measure("status-update, 1 row", "status-update", "--site", "mechelen", ids[i], status)
        edits = self.root / "edits.csv"
        lines = [f"{row_id};{status}" for row_id in ids[i :: max(1, len(ids) // 500)][:500]]
        edits.write_text("Rij-ID;Status activiteit\n" + "\n".join(lines) + "\n", encoding="utf-8")
        self.measure(
            "status-update, 500 rows", "status-update", "--site", "mechelen", "--from", str(edits)
        )

    def row_ids(self) -> list[str]:
        sheet = openpyxl.load_workbook(self.workbook, read_only=True)["Inburgeraars"]
        return [row[0] for row in sheet.iter_rows(min_row=2, values_only=True) if row[0]]


def spread(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):6.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def peak_rss(config: Path, *args: str) -> tuple[float, float, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_CLI, "--config", str(config), "-q", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    line = next(x for x in done.stderr.splitlines() if x.startswith("PEAK_RSS_KB"))
    own, child = (int(v) / 1024 for v in line.split()[1:])
    return took, own, child


def scale(people: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "agii-sync.toml"
        config.write_text(CONFIG, encoding="utf-8")
        (root / "sites/mechelen").mkdir(parents=True)
        rows = write_synthetic_export(
            root / "e0.csv", load_config(config).municipalities, people, seed=2, extra_columns=False
        )
        write_export(root / "e1.csv", _night(rows, 1))
        for label, export in (
            ("first push", "e0.csv"),
            ("push, nothing changed", "e0.csv"),
            ("push, 1 % changed", "e1.csv"),
        ):
            took, own, child = peak_rss(config, "push", str(root / export))
            met = "met" if own + child <= RSS_GOAL_MB else "NOT met"
            print(
                f"{people} people, {label:<24} {took:7.1f} s  peak RSS (tree) {own + child:6.0f} MB"
                f" (CLI {own:.0f} + largest child {child:.0f})  goal <= {RSS_GOAL_MB} {met}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=int, default=0)
    parser.add_argument(
        "--only-status", action="store_true", help="only the status-update cases (no pushes)"
    )
    args = parser.parse_args()
    os.environ.setdefault("AGII_SYNC_ROWKEY_SECRET", "benchmark-secret")
    if args.repeat:
        ratios(args.people, args.repeat, only_status=args.only_status)
    if args.scale:
        scale(args.scale)
    return 0


def ratios(people: int, repeat: int, *, only_status: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), people)
        for i in range(1, repeat + 1):
            bench.round(i, first=not only_status or i == 1, only_status=only_status)
    print(f"{people} people, one folder site, {repeat} rounds: median (min-max)")
    for name, goal in GOALS.items():
        ratio = bench.ratios[name]
        if not ratio:
            continue
        met = "met" if statistics.median(ratio) <= goal else "NOT met"
        took = spread(bench.times[name], " s")
        print(f"{name:<26} {took}  ratio {spread(ratio)}  goal <= {goal} {met}")


if __name__ == "__main__":
    sys.exit(main())
