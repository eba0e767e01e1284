"""The ``_access.json`` format (docs/emulator.md), read into an AccessSnapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import AccessSnapshot, Principal, RoleAssignment, SharingLink


def read_access_file(path: Path) -> AccessSnapshot:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: the folder site does not say who has access",
            hint="write _access.json in the site's folder (format: README, access-check)",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    try:
        return parse_access(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: not in the _access.json format ({exc})") from None


def parse_access(data: dict[str, Any]) -> AccessSnapshot:
    return AccessSnapshot(
        role_assignments=tuple(
            RoleAssignment(_principal(a["principal"]), tuple(a.get("roles", ())))
            for a in data.get("role_assignments", ())
        ),
        sharing_links=tuple(
            SharingLink(link["kind"], tuple(link.get("roles", ())))
            for link in data.get("sharing_links", ())
        ),
    )


def _principal(data: dict[str, Any]) -> Principal:
    kind = data["type"]
    if kind not in ("user", "sharepoint_group", "security_group"):
        raise ValueError(f"unknown principal type {kind!r}")
    return Principal(
        type=kind,
        title=str(data.get("title", "")),
        login=data.get("login"),
        email=data.get("email"),
        members=tuple(_principal(m) for m in data.get("members", ())),
    )
