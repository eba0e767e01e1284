"""A loopback SharePoint REST emulator for the demo, the tests and the benchmarks.

``python -m agii_sync.emulator --root DIR [--host 127.0.0.1] [--port 0] [--latency-ms N]
[--fault-rate F] [--retry-after S] [--lock FILE_URL]... [--quirk NAME]... [--seed N] [-v]``
prints its base URL
(``http://127.0.0.1:PORT``) as the first line of stdout and serves until killed. It refuses a
host that is not a loopback address (exit 2). In-process: ``Emulator(root).start()``.

Sites are ``{base}/sites/NAME``; every name exists (``DIR/NAME/`` is created on first use). A
file of the site lives at its path inside the site: ``Gedeelde documenten/x.xlsx`` is
``DIR/NAME/Gedeelde documenten/x.xlsx``. ETags (``"{GUID},N"``, N grows on every write),
UniqueIds and old versions are kept in ``DIR/NAME/.emulator/``.

SharePoint REST served (``odata=verbose`` JSON only; paths routed case-insensitively,
percent-decoded once, ``''`` read as ``'``), all under ``/sites/NAME/_api/``:

- ``POST contextinfo`` — form digest (never checked afterwards).
- ``GET Web`` — ``Url`` is the full site URL.
- ``Web/getFileByServerRelativeUrl('…')``, ``getFileByServerRelativePath(DecodedUrl='…')``,
  ``GetFileById('…')``: ``GET`` properties (and an ``ETag`` header); ``/$value`` ``GET``
  (``Range`` honoured) and ``POST`` with ``X-HTTP-Method: PUT``; ``/SaveBinaryStream``;
  ``/startUpload(uploadID=…)``, ``/continueUpload(…,fileOffset=N)``, ``/finishUpload(…)``,
  ``/cancelUpload(…)``; ``/Versions`` (``GET``) and ``/Versions/DeleteAll`` (``POST``).
- ``Web/getFolderByServerRelativeUrl('…')``, ``…Path(DecodedUrl='…')``, ``GetFolderById``,
  ``Web/RootFolder``, ``…/Folders('name')``: ``GET`` properties; ``…/Folders/Add('name')``;
  ``…/Files/add(overwrite=…,url='…')`` (``overwrite=false`` on an existing file → 400).
- ``Web/RoleAssignments`` (Member and RoleDefinitionBindings always expanded),
  ``Web/siteUsers`` (``$top`` pages with ``__next``; ``$filter=IsSiteAdmin eq true``),
  ``Web/siteGroups``, ``Web/siteGroups/GetById(N)`` and ``…/Users``, ``Web/GetList('…')`` and
  ``…/ListItemAllFields`` of a file or folder (``HasUniqueRoleAssignments``, ``RoleAssignments``):
  read from ``DIR/NAME/_access.json`` (docs/emulator.md). PrincipalType 1 user, 4 security
  group or Microsoft 365 group claim, 8 SharePoint group.

Microsoft Graph v1.0 at ``{base}/v1.0`` (graph.py): site by path, drives, driveItem by path or
id, ``createUploadSession`` (``if-match``), the upload URL ``{base}/_upload/…`` (PUT, POST
commit, DELETE cancel), the download URL ``{base}/_download/…``, ``children``,
``permissions``, ``versions``, item DELETE, ``groups/{id}/members|owners``.

Every write of file content (``$value`` PUT, ``SaveBinaryStream``, ``Files/add`` over an existing
file, each upload chunk) answers 412 when ``If-Match`` does not match the current ETag (or
``If-None-Match: *`` meets an existing file), and 423 (``SPFileLockException``) while the file is
locked. Every overwrite keeps the previous content as a version.

Requests need ``Authorization: Bearer <JWT>`` whose ``aud`` is SharePoint's (``/_api``) or
Graph's (``/v1.0``); none, not a JWT or another audience → 401; a token starting with ``denied``
→ 403. The app's Sites.Selected role on a site is ``app_grant`` in ``_access.json`` (default
``fullcontrol``): reads need ``read``, writes ``write``, permission reads ``fullcontrol``.
``--quirk NAME`` (tenant.py) makes the emulator misbehave in one documented way for ``doctor``.
``--latency-ms`` delays every API request. ``--fault-rate F`` answers that
share of API requests with 429 or 503 and ``Retry-After: S`` (``--retry-after``, default 1; a
fractional value is sent as a decimal, which only agii-sync's own client reads). The same
client address repeating the same method and path before its Retry-After has passed is
answered 429 again and counted in ``early_retries``.

Control endpoints (no latency, no faults, no auth):

- ``GET /_emulator/stats`` → ``{"requests": {kind: {method: n}}, "total_requests": n,
  "responses": {status: n}, "faults_injected": {"429": n, "503": n}, "faults_total": n,
  "early_retries": n, "user_agents": {agent: n}}``. Kinds: ``contextinfo``, ``web``,
  ``file_props``, ``file_content_get``, ``file_content_put``, ``files_add``, ``upload_chunk``,
  ``folder_props``, ``folders_add``, ``versions``, ``versions_delete``, ``role_assignments``,
  ``site_users``, ``site_groups``, ``group``, ``group_users``, ``list``, ``list_item``, the
  Graph kinds (docs/emulator.md) and ``unsupported``.
- ``POST /_emulator/stats/reset``.
- ``POST /_emulator/lock`` / ``POST /_emulator/unlock`` with ``{"url": "/sites/NAME/…/x.xlsx"}``;
  ``GET /_emulator/locks``.
- ``GET /_emulator/config`` (with the ``quirks``); ``POST /_emulator/config`` with any of
  ``fault_rate``,
  ``latency_ms``, ``retry_after``.
"""

from .server import Emulator, Settings

__all__ = ["Emulator", "Settings"]
