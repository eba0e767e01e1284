"""Access checks before personal data is written (``require_access_check``)."""

from __future__ import annotations

from ..config import Municipality
from ..engine import Run


def require_access(run: Run, m: Municipality) -> None:
    """Hook: refuse (exit 5) to push to a site whose access check fails. Filled in by the
    access-check work (issue 6)."""
    if not run.config.agii.require_access_check:
        return
