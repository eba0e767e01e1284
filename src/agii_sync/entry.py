"""The ``agii-sync`` console script: Ctrl-C and SIGTERM are handled from the moment this module
is loaded. Until the command line is imported a signal only sets a flag, which ``cli.main``
then turns into one line and exit 3: never a traceback out of the middle of an import."""

from __future__ import annotations

from . import interrupt

interrupt.install(starting=True)


def main() -> None:
    from .cli import main as cli_main

    cli_main()
