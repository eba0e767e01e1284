"""``audit verify --sites``: read the audit anchor each site's workbook carries.

Only the anchor (a custom document property) is looked at; no row is read, so the run leaves
no audit line of its own and never changes the trail it checks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..audit import SiteAnchor
from ..config import Config, Municipality
from ..errors import AgiiError, InputError
from ..formats.docprops import ANCHOR_PROPERTY, DocPropsError, read_property
from ..sites.factory import SiteOpener

SiteRead = SiteAnchor | AgiiError


def read_anchors(config: Config, site_ids: list[str] | None) -> list[tuple[str, SiteRead]]:
    """Per selected municipality, its anchor or the error that kept it from being read."""
    opener = SiteOpener(config)
    municipalities = config.select(site_ids)

    def one(m: Municipality) -> tuple[str, SiteRead]:
        try:
            return m.id, _anchor_of(m, opener)
        except AgiiError as error:
            return m.id, error

    workers = max(1, min(config.agii.workers, len(municipalities)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="anchor") as pool:
        return list(pool.map(one, municipalities))


def _anchor_of(m: Municipality, opener: SiteOpener) -> SiteAnchor:
    snapshot = opener.open(m).read()
    if snapshot.content is None:
        return SiteAnchor(m.id, False, None)
    try:
        return SiteAnchor(m.id, True, read_property(snapshot.content, ANCHOR_PROPERTY))
    except DocPropsError as exc:
        raise InputError(f"{m.id}: the workbook's document properties: {exc}") from None
