"""`agii-sync --version` and `--help` start fast because they import only typer and our own
light modules: the libraries that only some commands need load inside those commands
(tests/benchmarks/bench_startup.py measures the time; this checks what is imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "msal",
    "msal_extensions",
    "keyring",
    "openpyxl",
    "office365",
    "requests",
    "cryptography",
    "rich",
    "phonenumbers",
    "pycountry",
    "email_validator",
    "faker",
    "agii_sync.engine",
    "agii_sync.config",
    "agii_sync.auth",
)
PROBE = """
import json, sys
from agii_sync.cli import main
sys.argv = ["agii-sync", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def imported(*args: str, cwd: Path | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [("--version",), ("--help",), ("push", "--help"), ("status-update", "--help")],
)
def test_version_and_help_import_no_heavy_library(args: tuple[str, ...]) -> None:
    assert imported(*args) == []


def test_a_folder_site_command_loads_no_sign_in_or_export_libraries(tmp_path: Path) -> None:
    (tmp_path / "sites" / "mechelen").mkdir(parents=True)
    (tmp_path / "agii-sync.toml").write_text(
        '[[municipality]]\nid = "mechelen"\nname = "Mechelen"\nnis = "12025"\n'
        'postal_codes = ["2800"]\nsite = "file:sites/mechelen"\n'
        'protocol_start = 2024-01-01\nprotocol_end = 2099-12-31\nallowed = ["a@b.be"]\n',
        encoding="utf-8",
    )
    loaded = imported("check", cwd=tmp_path)
    assert "agii_sync.engine" in loaded  # the probe saw the command run
    assert not {"msal", "keyring", "office365", "requests", "openpyxl", "phonenumbers"} & set(
        loaded
    )
