"""The one error path: refusals that used to reach users as 500s are the
status their error class carries, with the same JSON body everywhere, and
change nothing."""

from __future__ import annotations

import aiohttp
import pytest

from server.recording import comments as comments_module
from testkit.multinode import wait_async
from testkit.peers import Participant, PatternVideoTrack, wait_for
from testkit.server import LiveServer

pytestmark = pytest.mark.integration


async def test_a_recording_being_made_is_not_deleted_and_a_full_one_takes_no_comment(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comments_module, "MAX_COMMENTS_PER_RECORDING", 2)
    session = await live_server.create_session()
    token = live_server.invite(session.id, "teacher")
    teacher = Participant(live_server.url, token)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        await teacher.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await wait_for(lambda: teacher.got("recording-state", state="recording") != [], 15)
        # the catalog row is written beside the recording's start
        await wait_for(lambda: live_server.manager.sessions.get(session.id) is not None, 5)
        rows: list[object] = []

        async def listed() -> bool:
            rows[:] = await live_server.catalog.recordings(session.id)
            return bool(rows)

        await wait_async(listed, 15, lambda: "the recording is not in the catalog")
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{live_server.url}/api/recordings") as r:
                (rec,) = (await r.json())["recordings"]
            url = f"{live_server.url}/api/recordings/{rec['id']}"
            async with http.delete(url) as r:
                assert r.status == 409
                assert (await r.json())["error"]["code"] == "recording_in_progress"
            async with http.get(url) as r:
                assert r.status == 200  # nothing changed
            for n in range(3):
                async with http.post(f"{url}/comments", json={"t": n, "text": "ok"}) as r:
                    if n < 2:
                        assert r.status == 201, await r.text()
                    else:
                        assert r.status == 429
                        assert (await r.json())["error"]["code"] == "limit_reached"
            async with http.get(f"{url}/comments") as r:
                assert len((await r.json())["comments"]) == 2
    finally:
        await teacher.close()
