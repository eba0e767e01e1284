"""Shared fixtures. Each fixture module under tests/fixtures/ is owned by one part of the tool."""

import os
import sys


def _cache_compiled_modules() -> None:
    """The suite starts a dozen Python processes (xdist workers, CLI subprocesses); with
    ``PYTHONDONTWRITEBYTECODE=1`` in the shell each of them compiles every module and rewrites
    every test's asserts again (~6 s per process, a sixth of the suite). Caching bytecode
    changes no behaviour under test, so the suite keeps it on for itself and its children."""
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_cache_compiled_modules()

from fixtures.emulator import *  # noqa: E402,F401,F403
from fixtures.figures import *  # noqa: E402,F401,F403
from fixtures.identity import *  # noqa: E402,F401,F403
from fixtures.leaks import *  # noqa: E402,F401,F403
from fixtures.secrets import *  # noqa: E402,F401,F403
from fixtures.workspace import *  # noqa: E402,F401,F403


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
