"""agii-sync: keep the AgII ↔ municipality workbooks in line with the data-sharing protocol."""

__version__ = "0.2.0"
