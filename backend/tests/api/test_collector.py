"""The app runs with GC_THRESHOLDS while it serves and gives the process its own back after."""

from __future__ import annotations

import gc

from app.core.settings import Settings
from app.main import create_app


async def test_the_app_sets_the_collector_pace_while_it_serves(settings: Settings) -> None:
    before = gc.get_threshold()
    app = create_app(settings.model_copy(update={"gc_thresholds": (12_345, 11, 12)}))
    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == (12_345, 11, 12)
    assert gc.get_threshold() == before
