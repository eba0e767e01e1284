"""The foreign-platform layer: every test here runs on a simulated Windows (fixtures/foreign.py)."""

from fixtures.foreign import windows_like  # noqa: F401
