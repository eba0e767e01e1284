"""What the package promises about its dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

import openpyxl.xml

ROOT = Path(__file__).resolve().parents[1]


def test_openpyxl_parses_with_defusedxml() -> None:
    """defusedxml is declared for openpyxl's sake: with it installed openpyxl refuses
    entity expansion and external entities in every workbook it reads."""
    assert openpyxl.xml.DEFUSEDXML is True


def test_runtime_dependencies_are_ranges_and_faker_is_only_for_the_demo() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [dep.split(";")[0] for dep in project["dependencies"]]
    assert not [dep for dep in names if "==" in dep], "no exact pins in a published package"
    assert not [dep for dep in names if dep.lower().startswith("faker")]
    assert any(dep.startswith("faker") for dep in project["optional-dependencies"]["demo"])


def test_the_demo_without_its_extra_says_how_to_get_it(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sys

    from typer.testing import CliRunner

    from agii_sync.cli import app

    monkeypatch.setitem(sys.modules, "faker", None)  # as if the extra were not installed
    result = CliRunner().invoke(app, ["demo", "--keep", str(tmp_path / "demo")])
    assert result.exit_code == 2, result.output
    assert "--extra demo" in result.output and "Traceback" not in result.output
