"""Shared fixtures. Each fixture module under tests/fixtures/ is owned by one part of the tool."""

from fixtures.emulator import *  # noqa: F401,F403
from fixtures.identity import *  # noqa: F401,F403
from fixtures.leaks import *  # noqa: F401,F403
from fixtures.secrets import *  # noqa: F401,F403
from fixtures.workspace import *  # noqa: F401,F403
