"""Shared set-up of the measure tests: every table and stored correction lives under tmp_path."""

import pytest


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))
