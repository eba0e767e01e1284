"""Parse the OData-style object paths that office365-rest-python-client sends.

``Web/getFolderByServerRelativePath(DecodedUrl='/sites/a/O''Brien')/Files/add(overwrite=true,url='x.xlsx')``
becomes a list of segments, each a name with positional and named arguments. The path is
percent-decoded once by the caller; here a quoted literal turns ``''`` into ``'``. The library
also sends entity keys with a bare apostrophe (``Folders('O'Brien map')``), so a quote only
closes a literal when a ``)`` or ``,`` follows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Value = str | int | float | bool | None


class ODataPathError(ValueError):
    """The path is not one the emulator can read."""


@dataclass(frozen=True)
class Segment:
    name: str
    args: tuple[Value, ...] = ()
    named: dict[str, Value] = field(default_factory=dict)
    has_call: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()

    def arg(self, *names: str) -> Value:
        """The first named argument among ``names`` (any case), else the first positional one."""
        lowered = {k.lower(): v for k, v in self.named.items()}
        for name in names:
            if name.lower() in lowered:
                return lowered[name.lower()]
        return self.args[0] if self.args else None


def parse_path(path: str) -> list[Segment]:
    segments: list[Segment] = []
    i = 0
    while i < len(path):
        if path[i] == "/":
            i += 1
            continue
        segment, i = _segment(path, i)
        segments.append(segment)
    return segments


def _segment(path: str, i: int) -> tuple[Segment, int]:
    start = i
    while i < len(path) and path[i] not in "/(":
        i += 1
    name = path[start:i]
    if i < len(path) and path[i] == "(":
        args, named, i = _arguments(path, i + 1)
        return Segment(name, tuple(args), named, has_call=True), i
    return Segment(name), i


def _arguments(path: str, i: int) -> tuple[list[Value], dict[str, Value], int]:
    args: list[Value] = []
    named: dict[str, Value] = {}
    while i < len(path):
        if path[i] == ")":
            return args, named, i + 1
        if path[i] in ", ":
            i += 1
            continue
        key, i = _key(path, i)
        value, i = _value(path, i)
        if key is None:
            args.append(value)
        else:
            named[key] = value
    raise ODataPathError("unterminated argument list")


def _key(path: str, i: int) -> tuple[str | None, int]:
    if path[i] == "'":
        return None, i
    end = i
    while end < len(path) and path[end] not in "=,)":
        end += 1
    if end < len(path) and path[end] == "=":
        return path[i:end].strip(), end + 1
    return None, i


def _value(path: str, i: int) -> tuple[Value, int]:
    if i < len(path) and path[i] == "'":
        return _literal(path, i + 1)
    end = i
    while end < len(path) and path[end] not in ",)":
        end += 1
    return _scalar(path[i:end].strip()), end


def _literal(path: str, i: int) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(path):
        char = path[i]
        if char != "'":
            chars.append(char)
            i += 1
        elif path[i + 1 : i + 2] == "'":
            chars.append("'")
            i += 2
        elif i + 1 >= len(path) or path[i + 1] in ",)":
            return "".join(chars), i + 1
        else:
            chars.append("'")  # a bare apostrophe inside an entity key
            i += 1
    raise ODataPathError("unterminated string literal")


def _scalar(text: str) -> Value:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
