"""The helpers the console's page loads share (audit_app.ui.session)."""

from __future__ import annotations

import asyncio

from audit_app.ui.session import finished_within


def test_finished_within_waits_at_most_so_long_and_leaves_the_work_going() -> None:
    async def check() -> None:
        slow = asyncio.ensure_future(asyncio.sleep(0.3, result="rows"))
        assert not await finished_within(slow, 0.01)
        assert not slow.done()  # still going: the caller awaits it later
        assert await finished_within(slow, 5)
        assert slow.result() == "rows"
        quick = asyncio.ensure_future(asyncio.sleep(0, result="rows"))
        assert await finished_within(quick, 5)

    asyncio.run(check())
