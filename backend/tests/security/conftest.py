from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.database import truncate


@pytest.fixture(autouse=True)
async def _clean_tables(engine: AsyncEngine) -> None:
    """Security tests commit through the app, so each starts from empty tables."""
    await truncate(engine)
