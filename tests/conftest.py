"""Shared fixtures. Each fixture module under tests/fixtures/ is owned by one part of the tool."""

from fixtures.emulator import *  # noqa: F401,F403
from fixtures.figures import *  # noqa: F401,F403
from fixtures.identity import *  # noqa: F401,F403
from fixtures.leaks import *  # noqa: F401,F403
from fixtures.secrets import *  # noqa: F401,F403
from fixtures.workspace import *  # noqa: F401,F403


def _build_each_app_once() -> None:
    """Typer's test runner builds the whole click command tree from the functions' signatures
    at every ``invoke`` (a fifth of an in-process command's time); the console script builds
    it once per process. Build it once per test process too: the tree holds no state of a run."""
    import typer.testing

    build = typer.testing._get_command
    built: dict[int, tuple[object, object]] = {}  # id → (app, its command): the app kept alive

    def get_command(app):  # type: ignore[no-untyped-def]
        if id(app) not in built:
            built[id(app)] = (app, build(app))
        return built[id(app)][1]

    typer.testing._get_command = get_command


_build_each_app_once()


def pytest_xdist_auto_num_workers(config):  # type: ignore[no-untyped-def]
    """One worker more than cores: tests wait on sockets, locks and subprocesses, and a third
    worker fills those gaps (108 s → 102 s for the suite on a 2-core machine)."""
    import os

    return (os.cpu_count() or 1) + 1
