"""The reflect half over HTTP and socket.io, against a real server: review
comments (threads, tags, shared live notes, the access policy, a restart),
exports (WebVTT, CSV, JSON), a clip made without transcoding, and a debrief
room (member <-> member media, shared playback, comments landing live)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.recording.manifest import read_manifest
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for
from testkit.server import LiveServer, make_config, running_server
from tests.test_recording_access import record_a_lesson

pytestmark = pytest.mark.integration


class Api:
    def __init__(self, server: LiveServer, http: aiohttp.ClientSession, tokens: dict[str, str]):
        self.server, self.http, self.tokens = server, http, tokens

    async def call(self, method: str, path: str, who: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with self.http.request(
            method, self.server.url + path, json=body, headers=headers
        ) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text


async def the_recording(api: Api, who: str = "admin") -> str:
    status, body = await api.call("GET", "/api/recordings", who)
    assert status == 200
    (rec,) = body["recordings"]
    return str(rec["id"])


async def test_comments_threads_tags_notes_and_who_reads_them(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_server(config) as server, aiohttp.ClientSession() as http:
        session_id, tokens = await record_a_lesson(server)
        api = Api(server, http, tokens)
        rid = await the_recording(api)
        base = f"/api/recordings/{rid}/comments"

        status, made = await api.call(
            "POST", base, "coach_a", {"t": 5000, "text": "Lovely wait time here", "tag": "BSP"}
        )
        assert status == 201 and made["comment"]["visibility"] == "team"
        thread = made["comment"]["id"]
        status, reply = await api.call(
            "POST",
            base,
            "teacher",
            {"t": 5200, "text": "Thanks! I counted to five", "parent": thread},
        )
        assert status == 201 and reply["comment"]["parent"] == thread
        status, _ = await api.call(
            "POST", base, "coach_b", {"t": 1, "text": "x", "tag": "Juggling"}
        )
        assert status == 400  # tags come from the lesson's categories and prompts
        status, _ = await api.call("POST", base, "observer", {"t": 1, "text": "hi"})
        assert status == 403  # observers watch; they do not comment
        status, mine = await api.call(
            "POST", base, "coach_b", {"t": 9000, "text": "note to self", "visibility": "private"}
        )
        assert status == 201

        # a coach shares one of their own live notes; not somebody else's
        timeline = (await api.call("GET", f"/api/recordings/{rid}/timeline", "coach_a"))[1]
        private = next(n for n in timeline["timeline"]["notes"] if n["text"] == "mine only")
        status, shared = await api.call("POST", base, "coach_a", {"fromNote": private["id"]})
        assert status == 201
        assert shared["comment"]["text"] == "mine only" and shared["comment"]["t"] == private["t"]
        status, _ = await api.call("POST", base, "coach_b", {"fromNote": private["id"]})
        assert status == 403

        texts = {}
        for who in ("teacher", "coach_a", "coach_b", "observer"):
            status, body = await api.call("GET", base, who)
            texts[who] = sorted(c["text"] for c in body["comments"])
        team = ["Lovely wait time here", "Thanks! I counted to five", "mine only"]
        assert texts["teacher"] == sorted(team)
        assert texts["coach_a"] == sorted(team)
        assert texts["coach_b"] == sorted([*team, "note to self"])
        assert texts["observer"] == []

    # comments survive a restart of the server
    async with running_server(config) as server, aiohttp.ClientSession() as http:
        api = Api(server, http, tokens)
        status, body = await api.call("GET", f"/api/recordings/{rid}/comments", "teacher")
        assert sorted(c["text"] for c in body["comments"]) == sorted(team)


async def test_exports_follow_the_reader(live_server: LiveServer) -> None:
    session_id, tokens = await record_a_lesson(live_server)
    async with aiohttp.ClientSession() as http:
        api = Api(live_server, http, tokens)
        rid = await the_recording(api)
        await api.call(
            "POST", f"/api/recordings/{rid}/comments", "coach_a", {"t": 3000, "text": "Nice <b>"}
        )
        status, vtt = await api.call("GET", f"/api/recordings/{rid}/export/cues.vtt", "teacher")
        assert status == 200 and vtt.startswith("WEBVTT")
        blocks = [b for b in vtt.split("\n\n")[1:] if "-->" in b]
        assert sum(b.startswith("cue-") for b in blocks) == 1
        assert sum(b.startswith("whisper-") for b in blocks) == 1
        assert sum(b.startswith("comment-") for b in blocks) == 1
        assert "Nice &lt;b&gt;" in vtt
        status, observer_vtt = await api.call(
            "GET", f"/api/recordings/{rid}/export/cues.vtt", "observer"
        )
        assert status == 200 and "-->" not in observer_vtt  # no cues, whispers, team comments

        status, tallies = await api.call(
            "GET", f"/api/recordings/{rid}/export/tallies.csv", "coach_b"
        )
        rows = list(csv.DictReader(io.StringIO(tallies)))
        assert [r["category"] for r in rows] == ["BSP"] and rows[0]["coach"] == "Dr Chen"
        status, rates = await api.call("GET", f"/api/recordings/{rid}/export/rates.csv", "teacher")
        header, *minutes = list(csv.reader(io.StringIO(rates)))
        assert (
            "BSP per minute" in header
            and sum(int(m[header.index("BSP per minute")]) for m in minutes) == 1
        )
        status, whole = await api.call(
            "GET", f"/api/recordings/{rid}/export/timeline.json", "teacher"
        )
        assert status == 200 and whole["timeline"]["cues"] and whole["comments"]
        assert (await api.call("GET", f"/api/recordings/{rid}/export/secret.txt", "teacher"))[
            0
        ] == 404


async def test_a_clip_is_remuxed_from_a_keyframe_with_progress(live_server: LiveServer) -> None:
    session_id, tokens = await record_a_lesson(live_server)
    async with aiohttp.ClientSession() as http:
        api = Api(live_server, http, tokens)
        rid = await the_recording(api)
        view = (await api.call("GET", f"/api/recordings/{rid}", "teacher"))[1]["view"]
        start, end = view["start_ms"], view["end_ms"]
        wanted = (start + (end - start) // 3, end - 200)
        status, _ = await api.call(
            "POST", f"/api/recordings/{rid}/clips", "observer", {"from_ms": 0, "to_ms": 10}
        )
        assert status == 403
        status, body = await api.call(
            "POST", f"/api/recordings/{rid}/clips", "coach_a",
            {"from_ms": wanted[0], "to_ms": wanted[1]},
        )  # fmt: skip
        assert status == 202
        clip_id = body["clip"]["id"]
        progress = []
        for _ in range(200):
            status, clip = await api.call(
                "GET", f"/api/recordings/{rid}/clips/{clip_id}", "teacher"
            )
            progress.append(clip["clip"]["progress"])
            if clip["clip"]["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert clip["clip"]["state"] == "done", clip
        assert progress[-1] == 1.0
        assert clip["clip"]["start_ms"] <= wanted[0]  # from the keyframe at or before
        directory = live_server.config.recordings_dir / session_id / rid
        path = directory / clip["clip"]["file"]
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
             "-of", "json", str(path)],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        streams = {s["codec_type"]: s["codec_name"] for s in json.loads(probe.stdout)["streams"]}
        assert streams == {"video": "vp8", "audio": "opus"}  # remuxed, not transcoded
        async with http.get(
            f"{live_server.url}/recordings/{rid}/{path.name}",
            headers={"Authorization": f"Bearer {tokens['observer']}"},
        ) as r:
            assert r.status == 200 and (await r.read())[:4] == b"\x1a\x45\xdf\xa3"


async def test_a_debrief_room_watches_together(live_server: LiveServer) -> None:
    session_id, tokens = await record_a_lesson(live_server)
    async with aiohttp.ClientSession() as http:
        api = Api(live_server, http, tokens)
        rid = await the_recording(api)
        status, _ = await api.call("POST", f"/api/recordings/{rid}/debriefs", "coach_a", {})
        assert status == 403  # the teacher decides who watches their lesson
        status, made = await api.call(
            "POST", f"/api/recordings/{rid}/debriefs", "teacher", {"members": ["Ana", "Ben"]}
        )
        assert status == 201 and made["session"]["kind"] == "debrief"
        links = {m["name"]: m["url"].split("token=")[1] for m in made["members"]}
        owner = made["owner"]["url"].split("token=")[1]
        api.tokens.update(ana=links["Ana"], ben=links["Ben"], owner=owner)

        # members read the lesson's classroom, cues and tallies; not its whispers
        status, view = await api.call("GET", f"/api/recordings/{rid}", "ana")
        assert status == 200
        assert {t["source"] for t in view["view"]["tracks"]} == {"camera", "mic"}
        timeline = (await api.call("GET", f"/api/recordings/{rid}/timeline", "ana"))[1]["timeline"]
        assert timeline["whispers"] == [] and [c["text"] for c in timeline["cues"]] == ["Wait time"]

        ana = Participant(live_server.url, links["Ana"])
        ben = Participant(live_server.url, links["Ben"])
        teacher_here = Participant(
            live_server.url, live_server.invite(made["session"]["id"], "teacher")
        )
        try:
            reply = await ana.join()
            assert reply["debrief"]["recordingId"] == rid
            await ben.join()
            await ana.publish(PatternVideoTrack(), "camera")
            await ben.publish(ToneTrack(), "mic")
            await wait_for(lambda: ben.tracks(source="camera") != [])
            await wait_for(lambda: ben.tracks(source="camera")[0].frames > 10, timeout=15)
            await wait_for(lambda: ana.tracks(source="mic") != [])
            await wait_for(lambda: ana.tracks(source="mic")[0].frames > 10, timeout=15)
            await teacher_here.connect()
            refused = await teacher_here.call("join", {"token": teacher_here.token})
            assert refused["error"]["code"] == "forbidden"  # a debrief is for its members

            for p in (ana, ben):
                p.sio.on("playback-state", p._recorder("playback-state"))
                p.sio.on("comment", p._recorder("comment"))
            played = await ana.call("playback", {"action": "play", "position": 12.5})
            assert played["ok"] and played["playback"]["driverName"] == "Ana"
            await wait_for(lambda: any(s["moving"] for s in ben.got("playback-state")))
            assert (await ben.call("playback", {"action": "pause"}))["error"]["code"] == "forbidden"
            assert (await ben.call("playback-drive"))["ok"]  # one click: Ben drives now
            assert (await ben.call("playback", {"action": "rate", "rate": 1.5}))["ok"]
            waiting = await ana.call("playback-buffering", {"buffering": True})
            assert (
                waiting["playback"]["waitingFor"] == ["Ana"] and not waiting["playback"]["moving"]
            )
            ready = await ana.call("playback-buffering", {"buffering": False})
            assert ready["playback"]["moving"] and ready["playback"]["rate"] == 1.5
            sync = await ana.call("time-sync")
            assert sync["ok"] and sync["serverMs"] > 0

            # a comment made in the review lands on everyone's timeline at once
            status, _ = await api.call(
                "POST", f"/api/recordings/{rid}/comments", "ana", {"t": 4000, "text": "Look here"}
            )
            assert status == 201
            await wait_for(lambda: ben.got("comment") != [])
            assert ben.got("comment")[0]["text"] == "Look here"
        finally:
            for p in (ana, ben, teacher_here):
                await p.close()
        manifest = read_manifest(next((live_server.config.recordings_dir / session_id).iterdir()))
        assert manifest["state"] == "finalized"


async def test_a_debrief_is_recorded_when_its_owner_chooses(live_server: LiveServer) -> None:
    _, tokens = await record_a_lesson(live_server)
    async with aiohttp.ClientSession() as http:
        api = Api(live_server, http, tokens)
        rid = await the_recording(api)
        status, made = await api.call(
            "POST", f"/api/recordings/{rid}/debriefs", "teacher", {"members": ["Ana"]}
        )
        debrief_id = made["session"]["id"]
        owner = Participant(live_server.url, made["owner"]["url"].split("token=")[1])
        ana = Participant(live_server.url, made["members"][0]["url"].split("token=")[1])
        try:
            joined = await owner.join()
            assert joined["owner"] is True and joined["recording"]["planned"] is False
            await ana.join()
            refused = await ana.call("recording-plan", {"record": True})
            assert refused["error"]["code"] == "forbidden"  # the owner decides
            assert (await owner.call("recording-plan", {"record": True}))["ok"]
            await owner.publish(PatternVideoTrack(), "camera")
            await ana.publish(ToneTrack(), "mic")
            await wait_for(lambda: owner.got("recording-state", state="recording") != [])
            await wait_for(lambda: owner.tracks(source="mic") != [])
            await wait_for(lambda: owner.tracks(source="mic")[0].frames > 20, timeout=15)
            assert (await owner.call("end-session"))["ok"]
        finally:
            await owner.close()
            await ana.close()
        (row,) = [
            r
            for r in await live_server.catalog.recordings(debrief_id)
            if await wait_until_finalized(live_server, r.id)
        ]
        api.tokens.update(ana=made["members"][0]["url"].split("token=")[1])
        status, view = await api.call("GET", f"/api/recordings/{row.id}", "ana")
        assert status == 200
        assert {t["source"] for t in view["view"]["tracks"]} == {"camera", "mic"}
        # the lesson's own invites do not reach the debrief's recording
        assert (await api.call("GET", f"/api/recordings/{row.id}", "teacher"))[0] == 403


async def wait_until_finalized(server: LiveServer, recording_id: str) -> bool:
    for _ in range(200):
        row = await server.catalog.get(recording_id)
        if row is not None and row.state == "finalized":
            return True
        await asyncio.sleep(0.05)
    return False
