"""The TOML config (docs/config.md) loaded into pydantic models.

Errors name the file, the key and what is wrong. Secrets are never read from the config: a key
that looks like one is a config error.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .domain import refnis
from .errors import ConfigError
from .siteurl import HttpSite, SiteKind, check_workbook_path, parse_http_site, site_kind

CONFIG_ENV = "AGII_SYNC_CONFIG"
DEFAULT_CONFIG = "agii-sync.toml"
SECRET_KEY_PATTERNS = ("*secret*", "*password*", "*private_key*", "token", "*_token")

NisCode = Annotated[str, StringConstraints(pattern=r"^\d{5}$")]
PostalCode = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]


class DeleteLimit(BaseModel):
    """``max_delete``: an absolute count ("40" / 40) or a share of the rows ("25%")."""

    model_config = ConfigDict(frozen=True)
    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: str | int) -> DeleteLimit:
        text = str(value).strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 <= percent <= 100:
                    raise ValueError
                return cls(percent=percent)
            count = int(text)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ValueError("must be a count such as 40 or a percentage such as 25%") from None

    def allows(self, removed: int, total: int) -> bool:
        if removed == 0:
            return True
        if self.count is not None:
            return removed <= self.count
        assert self.percent is not None
        return total > 0 and removed * 100 <= self.percent * total

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


MAX_PATH_PART = 255  # bytes of one file or folder name (ext4, NTFS, APFS)
MAX_PATH = 4096  # bytes of a whole path (Linux PATH_MAX)


def checked_path(text: str) -> str:
    """A path the file system can take: no NUL, no name or whole path longer than any file
    system allows (those fail late, as internal errors, instead of as a config error)."""
    if "\x00" in text:
        raise ValueError("a path cannot hold a NUL character")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise ValueError(f"the path is longer than {MAX_PATH:,} bytes")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_PATH_PART for part in Path(text).parts):
        raise ValueError(f"a file or folder name in the path is longer than {MAX_PATH_PART} bytes")
    return text


PROTOCOL_RETENTION_MONTHS = 6  # art. 3: until 6 months after the attest (docs/protocol.md)
Level = Literal["read", "edit", "full"]
EndReason = Literal["new_protocol", "notice", "agreement", "other"]


class AgiiSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    audit_log: Path = Path("var/audit.jsonl")
    retention_months: int = Field(default=6, ge=0, le=PROTOCOL_RETENTION_MONTHS)
    # How long someone without an attest (or whose export row is rejected) may stay after the
    # last push that shared them; never past the protocol's end (docs/protocol.md, art. 3).
    max_keep_without_attest_months: int = Field(default=12, ge=1, le=120)
    max_delete: DeleteLimit = DeleteLimit(percent=25)
    require_access_check: bool = True
    # A sign language reveals a disability (GDPR art. 9): only with the DPOs' agreement.
    allow_sign_languages: bool = False
    dpo: str | None = Field(default=None, min_length=1)  # AgII's DPO, told of an incident
    # Where a municipality reports wrong data (art. 7); shown by `check` and the Toelichting.
    data_errors_contact: str | None = Field(default=None, min_length=1)
    suppression_list: Path | None = None  # forget: default beside the audit trail
    workers: int = Field(default=8, ge=1, le=16)  # sites processed at once
    # SharePoint: how long a write keeps retrying a workbook open in Excel (423), then exit 3
    lock_wait_seconds: float = Field(default=10.0, ge=0, le=3600)
    lock_file: Path | None = None

    @field_validator("audit_log", "lock_file", mode="before")
    @classmethod
    def _usable_path(cls, value: object) -> object:
        return checked_path(value) if isinstance(value, str) else value

    @field_validator("max_delete", mode="before")
    @classmethod
    def _parse_limit(cls, value: object) -> object:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return DeleteLimit.parse(value)
        return value


class AuthSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str
    client_id: str
    method: Literal["certificate", "device-code"] = "certificate"
    certificate_thumbprint: str | None = None
    # https sites must be on the tenant's own SharePoint host; others only when listed here
    sharepoint_hosts: list[str] = Field(default_factory=list)

    @property
    def allowed_hosts(self) -> set[str]:
        """``agii.onmicrosoft.com`` → ``agii.sharepoint.com``, plus ``sharepoint_hosts``."""
        hosts = {host.strip().lower() for host in self.sharepoint_hosts}
        name, dot, rest = self.tenant.strip().lower().partition(".")
        if dot and rest == "onmicrosoft.com":
            hosts.add(f"{name}.sharepoint.com")
        return hosts

    # A PEM or PFX file with the private key (relative to the config); its password comes from
    # AGII_SYNC_CERT_PASSWORD or the keyring. Without it the PEM key comes from
    # AGII_SYNC_CERT_KEY or the keyring.
    certificate_path: Path | None = None
    # device-code: keep the token cache in a plain-text file (mode 0600) where the platform
    # offers no encrypted store (a Linux machine without libsecret, say)
    allow_plaintext_token_cache: bool = False

    @model_validator(mode="after")
    def _thumbprint_for_certificate(self) -> AuthSection:
        pfx = self.certificate_path is not None and self.certificate_path.suffix.lower() in (
            ".pfx",
            ".p12",
        )
        if self.method == "certificate" and not self.certificate_thumbprint and not pfx:
            raise ValueError(
                "method 'certificate' needs certificate_thumbprint (a PFX certificate_path "
                "carries its own)"
            )
        return self


SHEET_NAME_FORBIDDEN = "\\/?*[]:"  # Excel's rule


class WorkbookSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = "Gedeelde documenten/Participatietraject/inburgeraars.xlsx"
    sheet: str = Field(default="Inburgeraars", min_length=1, max_length=31)

    @field_validator("path")
    @classmethod
    def _xlsx(cls, value: str) -> str:
        value = checked_path(check_workbook_path(value))
        if not value.lower().endswith(".xlsx"):
            raise ValueError("must name an .xlsx file")
        return value

    @field_validator("sheet")
    @classmethod
    def _excel_sheet_name(cls, value: str) -> str:
        if any(char in value for char in SHEET_NAME_FORBIDDEN) or value != value.strip("'"):
            raise ValueError("a sheet name cannot hold \\ / ? * [ ] : or start or end with '")
        if value.casefold() == "toelichting":
            raise ValueError("'Toelichting' is the explanation sheet; choose another name")
        if not value.strip() or value.casefold() == "history":  # blank; reserved by Excel
            raise ValueError("not a name Excel allows for a sheet")
        return value


class AllowedEntry(BaseModel):
    """Someone who may reach the site: the plain string form is ``principal`` alone.
    ``profile`` is the function profile of the protocol (``agii`` marks AgII's own accounts,
    which keep access after the protocol's end); ``level`` the highest permission allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    principal: str = Field(min_length=1)
    profile: str | None = Field(default=None, min_length=1)
    level: Level | None = None

    @field_validator("principal")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("principal may not be blank")
        return value.strip()


AGII_PROFILE = "agii"


class Municipality(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str = Field(min_length=1)
    nis: NisCode
    postal_codes: list[PostalCode] = Field(min_length=1)
    site: str
    protocol_start: date
    protocol_end: date
    # An early end (a new protocol, notice, ...): the last day the protocol ran, and why.
    ended_on: date | None = None
    end_reason: EndReason | None = None
    retention_months: int | None = Field(default=None, ge=0, le=PROTOCOL_RETENTION_MONTHS)
    dpo: str | None = Field(default=None, min_length=1)  # the municipality's DPO
    allowed: list[AllowedEntry] = Field(min_length=1)

    @field_validator("allowed", mode="before")
    @classmethod
    def _plain_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"principal": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("site")
    @classmethod
    def _site_url(cls, value: str) -> str:
        if site_kind(value) == "file":  # raises ValueError when not one of the three forms
            checked_path(value[len("file:") :])
        return value

    @field_validator("nis")
    @classmethod
    def _official_nis(cls, value: str) -> str:
        if not refnis.is_municipality(value):
            raise ValueError(
                f"not the NIS code of a Belgian municipality ({refnis.lists_source()})"
            )
        return value

    @model_validator(mode="after")
    def _official_postal_codes(self) -> Municipality:
        for code in self.postal_codes:
            if not refnis.postcode_belongs_to(code, self.nis):
                raise ValueError(
                    f"postal code {code} is not one of NIS {self.nis}'s on the official list "
                    f"({refnis.lists_source()})"
                )
        return self

    @model_validator(mode="after")
    def _window(self) -> Municipality:
        if self.protocol_end < self.protocol_start:
            raise ValueError("protocol_end is before protocol_start")
        if (self.ended_on is None) != (self.end_reason is None):
            raise ValueError("ended_on and end_reason go together (an early end needs both)")
        if self.ended_on is not None and self.ended_on < self.protocol_start:
            raise ValueError("ended_on is before protocol_start")
        return self

    @property
    def kind(self) -> SiteKind:
        return site_kind(self.site)

    @property
    def http_site(self) -> HttpSite:
        """The parsed ``https://`` or ``http://`` site (ValueError for a ``file:`` site)."""
        return parse_http_site(self.site)

    @property
    def last_day(self) -> date:
        """The protocol's last day: ``protocol_end``, or ``ended_on`` when it ended early."""
        if self.ended_on is not None:
            return min(self.protocol_end, self.ended_on)
        return self.protocol_end

    def protocol_ended(self, today: date) -> bool:
        return today > self.last_day

    @property
    def allowed_principals(self) -> list[str]:
        return [entry.principal for entry in self.allowed]

    @property
    def allowed_levels(self) -> dict[str, Level]:
        return {e.principal: e.level for e in self.allowed if e.level is not None}

    @property
    def agii_principals(self) -> list[str]:
        return [e.principal for e in self.allowed if e.profile == AGII_PROFILE]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agii: AgiiSection = AgiiSection()
    auth: AuthSection | None = None
    workbook: WorkbookSection = WorkbookSection()
    municipalities: list[Municipality] = Field(alias="municipality", min_length=1)
    source: Path = Path(DEFAULT_CONFIG)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for attr in ("id", "nis"):
            seen: set[str] = set()
            for m in self.municipalities:
                value = getattr(m, attr)
                if value in seen:
                    raise ValueError(f"two municipalities share {attr} {value!r}")
                seen.add(value)
        return self

    @model_validator(mode="after")
    def _one_site_each(self) -> Config:
        """Two municipalities on one site (or one folder inside another's) would put one's
        people in the other's workbook."""
        seen: dict[object, str] = {}
        folders: list[tuple[Path, str]] = []
        for m in self.municipalities:
            if m.kind == "file":
                folder = Path(os.path.normcase(os.path.abspath(self.site_folder(m))))
                for other, other_id in folders:
                    if (
                        folder == other
                        or folder.is_relative_to(other)
                        or other.is_relative_to(folder)
                    ):
                        raise ValueError(
                            f"municipalities {other_id!r} and {m.id!r} share a site folder "
                            "(or one lies inside the other); each needs its own"
                        )
                folders.append((folder, m.id))
                continue
            identity = m.http_site.identity
            if identity in seen:
                raise ValueError(
                    f"municipalities {seen[identity]!r} and {m.id!r} share a site; each needs "
                    "its own"
                )
            seen[identity] = m.id
        return self

    @model_validator(mode="after")
    def _tenant_hosts(self) -> Config:
        """A token for the tenant goes only to the tenant's SharePoint host (or one listed in
        ``[auth] sharepoint_hosts``): a typo or a rogue entry must not receive it."""
        if self.auth is None:
            return self
        allowed = self.auth.allowed_hosts
        for m in self.municipalities:
            if m.kind == "sharepoint" and m.http_site.host not in allowed:
                shown = ", ".join(sorted(allowed)) or "none: list them in sharepoint_hosts"
                raise ValueError(
                    f"municipality {m.id!r}: the site is not on the tenant's SharePoint host "
                    f"({shown}); add its host to [auth] sharepoint_hosts if it is right"
                )
        return self

    @property
    def folder(self) -> Path:
        return self.source.parent

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.folder / path

    @property
    def audit_log(self) -> Path:
        return self.resolve(self.agii.audit_log)

    @property
    def certificate_file(self) -> Path | None:
        if self.auth is None or self.auth.certificate_path is None:
            return None
        return self.resolve(self.auth.certificate_path)

    @property
    def suppression_list(self) -> Path:
        if self.agii.suppression_list is not None:
            return self.resolve(self.agii.suppression_list)
        return self.audit_log.with_name("suppressed.jsonl")

    def retention_months(self, m: Municipality) -> int:
        """The municipality's own (shorter) term, else ``[agii] retention_months``."""
        return self.agii.retention_months if m.retention_months is None else m.retention_months

    @property
    def lock_file(self) -> Path:
        if self.agii.lock_file is not None:
            return self.resolve(self.agii.lock_file)
        return self.source.with_name(self.source.name + ".lock")

    def by_id(self, site_id: str) -> Municipality:
        for m in self.municipalities:
            if m.id == site_id:
                return m
        known = ", ".join(m.id for m in self.municipalities)
        raise ConfigError(f"unknown site {site_id!r}", hint=f"known sites: {known}")

    def select(self, site_ids: list[str] | None) -> list[Municipality]:
        """The municipalities named with --site (in config order), or all of them."""
        if not site_ids:
            return list(self.municipalities)
        wanted = {self.by_id(s).id for s in site_ids}
        return [m for m in self.municipalities if m.id in wanted]

    def site_folder(self, m: Municipality) -> Path:
        """The folder of a ``file:`` site, resolved against the config's folder."""
        return self.resolve(Path(m.site[len("file:") :]))


def find_config(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG)


def load_config(explicit: Path | None = None) -> Config:
    path = find_config(explicit)
    raw = _parse_toml(path, _read_config_text(path))
    _refuse_secrets(path, raw)
    try:
        return Config.model_validate({**raw, "source": path.resolve()})
    except ValidationError as exc:
        raise ConfigError(f"{_shown(path)}: {_describe(exc, raw)}") from None


def _read_config_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {_shown(path)} not found",
            hint=f"pass --config PATH, set ${CONFIG_ENV}, or create ./{DEFAULT_CONFIG}",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"{_shown(path)}: cannot read: {exc.__class__.__name__}") from None


def _parse_toml(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_shown(path)}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{_shown(path)}: not valid TOML: arrays or tables nested too deeply",
            hint="a config needs only a few levels of nesting",
        ) from None


def _shown(path: Path) -> str:
    """A path as an error shows it: printable, and not so long that it hides the message."""
    text = repr(str(path))[1:-1]
    return text if len(text) <= 200 else f"{text[:100]}…{text[-60:]}"


def _refuse_secrets(path: Path, raw: object, prefix: str = "") -> None:
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            _refuse_secrets(path, item, f"{prefix}[{i}]")
    elif isinstance(raw, dict):
        for key, value in raw.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if any(fnmatch.fnmatch(key.lower(), p) for p in SECRET_KEY_PATTERNS):
                raise ConfigError(
                    f"{path}: key {dotted!r} looks like a secret; secrets are never read "
                    "from the config",
                    hint="use the environment (AGII_SYNC_ROWKEY_SECRET, AGII_SYNC_CERT_KEY) "
                    "or `agii-sync login`",
                )
            _refuse_secrets(path, value, dotted)


def _describe(exc: ValidationError, raw: dict) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = ""
        for part in loc:
            if isinstance(part, int):
                key += f"[{part}]"
            else:
                key += f".{part}" if key else str(part)
        if loc[:1] == ["municipality"] and len(loc) > 1 and isinstance(loc[1], int):
            items = raw.get("municipality") or []
            if loc[1] < len(items) and isinstance(items[loc[1]], dict) and "id" in items[loc[1]]:
                key = key.replace(
                    f"municipality[{loc[1]}]", f"municipality[id={items[loc[1]]['id']}]"
                )
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{key or '(top level)'}: {message}")
    return "; ".join(lines)
