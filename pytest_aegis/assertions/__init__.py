"""Assertion helpers, importable from :mod:`pytest_aegis`."""
