from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_tables(clean_tables: None) -> None:
    """These tests commit through the app: each starts from empty tables."""
