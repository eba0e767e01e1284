"""Usage errors that never repeat what was typed.

Click's own messages quote the offending text ("Got unexpected extra arguments (Jan
Peeters)", "No such option: --Jan", "Invalid value for '--site': 'x' ..."), and what a person
types by mistake may be a name. These messages name the offending argument by its position on
the command line (1 = the first word after ``agii-sync``) and by the tool's own option and
argument names only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from typer._click.exceptions import (
    BadOptionUsage,
    BadParameter,
    ClickException,
    MissingParameter,
    NoSuchOption,
)

EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((?P<words>.*)\)$", re.S)
NO_SUCH_COMMAND = re.compile(r"^No such command '(?P<words>.*)'\.?$", re.S)


def safe_usage_message(error: ClickException, argv: Sequence[str]) -> str:
    """What went wrong, with every user-typed word replaced by its position in ``argv``."""
    if isinstance(error, NoSuchOption):
        return _unknown_option(error, argv)
    if isinstance(error, MissingParameter):
        return error.format_message()  # built from our parameter names only
    if isinstance(error, BadParameter):
        return _bad_value(error, argv)
    if isinstance(error, BadOptionUsage):
        return error.format_message()  # raised for an option the parser matched: ours
    message = error.format_message()
    for pattern, what in (
        (EXTRA_ARGUMENTS, "unexpected extra argument"),
        (NO_SUCH_COMMAND, "no such command"),
    ):
        found = pattern.match(message)
        if found:
            positions = _positions(argv, found["words"].split(" "))
            return f"{what} at {_where(positions)}"
    if _echoes(message, argv):  # a message we do not know: never risk repeating a word
        return "the command line is not valid"
    return message


def _unknown_option(error: NoSuchOption, argv: Sequence[str]) -> str:
    typed = error.option_name
    positions = [
        i for i, word in enumerate(argv, 1) if word == typed or word.startswith(typed + "=")
    ]
    message = f"unknown option at {_where(positions)}"
    if error.possibilities:
        message += f" (did you mean {', '.join(sorted(error.possibilities))}?)"
    return message


def _bad_value(error: BadParameter, argv: Sequence[str]) -> str:
    param = error.param
    if param is None:
        return "invalid value on the command line"
    opts = list(getattr(param, "opts", []) or [])
    name = param.get_error_hint()  # the option's or argument's own name, never the value
    positions = _value_positions(argv, opts) if param.param_type_name == "option" else []
    return f"invalid value for {name}" + (f" at {_where(positions)}" if positions else "")


def _value_positions(argv: Sequence[str], opts: Sequence[str]) -> list[int]:
    """Where the values given to an option are: the word after it, or after its ``=``."""
    found = []
    for i, word in enumerate(argv, 1):
        if word in opts and i < len(argv):
            found.append(i + 1)
        elif any(word.startswith(opt + "=") for opt in opts if opt.startswith("--")):
            found.append(i)
    return found


def _positions(argv: Sequence[str], words: Sequence[str]) -> list[int]:
    wanted = [w for w in words if w]
    found, start = [], 0
    for word in wanted:  # in order, as Click lists them
        for i in range(start, len(argv)):
            if argv[i] == word:
                found.append(i + 1)
                start = i + 1
                break
    return found


def _where(positions: Sequence[int]) -> str:
    listed = list(positions)
    if not listed:
        return "a position on the command line"
    label = "position" if len(listed) == 1 else "positions"
    return f"argument {label} {', '.join(str(p) for p in listed[:10])}"


def _echoes(message: str, argv: Sequence[str]) -> bool:
    return any(len(word) > 1 and word in message for word in argv)
