"""Push of 10,000 people to one site, against a bare openpyxl load + save of the same workbook.

Run: ``uv run python tests/benchmarks/bench_push.py [--people N] [--repeat R]``. Prints the
figures side by side and the ratio (goal for issue 2: push ≤ 1.5 × load + save).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from agii_sync.cli import app
from agii_sync.config import load_config
from agii_sync.demo_data import write_export, write_synthetic_export

CONFIG = """\
[agii]
audit_log = "var/audit.jsonl"
max_delete = "100%"
require_access_check = false  # measured: the workbook work

[[municipality]]
id = "mechelen"
name = "Mechelen"
nis = "12025"
postal_codes = ["2800", "2801", "2811", "2812"]
site = "file:sites/mechelen"
protocol_start = 2024-01-01
protocol_end = 2099-12-31
allowed = ["staff@mechelen.be"]
"""


def _night(rows: list[dict], night: int) -> list[dict]:
    """A nightly export: 1 % of the people changed, a few gone, a few new."""
    changed = [dict(r) for r in rows]
    for r in changed[night::100]:
        r["straat"] = f"{r['straat']} {night}"
    new = [dict(r, dossiernummer=f"N{night}{i:06d}") for i, r in enumerate(rows[:20])]
    return changed[: -10 * night] + new


def timed(action) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AGII_SYNC_ROWKEY_SECRET", "benchmark-secret")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = root / "agii-sync.toml"
        config_path.write_text(CONFIG, encoding="utf-8")
        (root / "sites" / "mechelen").mkdir(parents=True)
        config = load_config(config_path)
        rows = write_synthetic_export(
            root / "export0.csv", config.municipalities, args.people, seed=1, extra_columns=False
        )
        exports = [root / "export0.csv"]
        for i in range(1, args.repeat + 1):
            exports.append(root / f"export{i}.csv")
            write_export(exports[-1], _night(rows, i))
        runner = CliRunner()
        workbook = root / "sites/mechelen/Gedeelde documenten/Participatietraject/inburgeraars.xlsx"

        def push(export: Path) -> None:
            result = runner.invoke(app, ["--config", str(config_path), "-q", "push", str(export)])
            assert result.exit_code in (0, 1), result.output

        first = timed(lambda: push(exports[0]))
        sheet = openpyxl.load_workbook(workbook, read_only=True)["Inburgeraars"]
        shared = sum(1 for _ in sheet.iter_rows(min_row=2, values_only=True))
        pushes, baselines, noops = [], [], []
        for export in exports[1:]:
            pushes.append(timed(lambda e=export: push(e)))
            noops.append(timed(lambda e=export: push(e)))
            content = workbook.read_bytes()
            baselines.append(
                timed(lambda c=content: openpyxl.load_workbook(io.BytesIO(c)).save(io.BytesIO()))
            )
    push_s, base_s, noop_s = (statistics.median(x) for x in (pushes, baselines, noops))
    print(f"people in export          {args.people:>8}")
    print(f"rows in workbook          {shared:>8}")
    print(f"first push (create)       {first:8.2f} s")
    print(f"push with changes         {push_s:8.2f} s  (median of {args.repeat})")
    print(f"push, nothing changed     {noop_s:8.2f} s")
    print(f"openpyxl load + save      {base_s:8.2f} s")
    print(f"ratio push / load+save    {push_s / base_s:8.2f}  (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
