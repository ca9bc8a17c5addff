"""Who reads what of a recorded lesson: every role against every recording
route and file, with real tokens against a real server. What a role could
not hear or see live it cannot read afterwards; refusals carry no recorded
bytes; every read and the deletion are in the audit log."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from server.core.tokens import issue_admin_token, issue_invite
from server.storage.audit import AuditLog
from testkit.peers import Participant, PatternVideoTrack, ToneTrack, wait_for
from testkit.server import TEST_SECRET, LiveServer

pytestmark = pytest.mark.integration

EBML = b"\x1a\x45\xdf\xa3"


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Any

    def json(self) -> Any:
        return json.loads(self.body)


async def record_a_lesson(
    server: LiveServer, *, before_s: float = 0.0, after_s: float = 0.0
) -> tuple[str, dict[str, str]]:
    """A lesson with a teacher (camera, mic), two named coaches (one
    whispers, cues, tallies and writes a private, a team and an everyone
    note), an observer; ended. ``before_s``/``after_s`` of plain lesson come
    before the whisper and after the rest. Returns (session id, tokens by reader)."""
    session = await server.create_session()
    tokens = {
        "teacher": server.invite(session.id, "teacher"),
        "coach_a": server.invite(session.id, "coach", name="Dr Chen"),
        "coach_b": server.invite(session.id, "coach", name="Mr Okafor"),
        "observer": server.invite(session.id, "observer", name="Visiting student teacher"),
    }
    people = {k: Participant(server.url, t) for k, t in tokens.items()}
    teacher, coach, other, observer = people.values()
    try:
        for p in people.values():
            await p.join()
        await teacher.publish(PatternVideoTrack(), "camera")
        await teacher.publish(ToneTrack(440), "mic")
        whisper = await coach.publish(ToneTrack(1000), "whisper")
        await wait_for(lambda: coach.published(whisper))
        await wait_for(lambda: len(observer.received) == 2)
        await wait_for(lambda: observer.tracks(source="camera")[0].frames > 20, timeout=15)
        await asyncio.sleep(before_s)
        assert (await coach.call("whisper-start"))["ok"]
        await wait_for(lambda: teacher.tracks(producerId=whisper) != [])
        await wait_for(lambda: teacher.tracks(producerId=whisper)[0].frames > 30, timeout=10)
        assert (await coach.call("whisper-stop"))["ok"]
        assert (await coach.call("cue", {"text": "Wait time"}))["ok"]
        assert (await coach.call("tally", {"category": "BSP"}))["ok"]
        for text, visibility in (("mine only", "private"), ("for the team", "team")):
            reply = await coach.call("note", {"text": text, "visibility": visibility})
            assert reply["ok"]
        everyone = await other.call("note", {"text": "nice energy"})
        share = {"noteId": everyone["note"]["id"], "visibility": "everyone"}
        assert (await other.call("note-share", share))["ok"]
        assert (await teacher.call("recording-pause"))["ok"]
        assert (await teacher.call("recording-resume"))["ok"]
        await asyncio.sleep(after_s)
        await server.manager.end_session(session.id)
    finally:
        for p in people.values():
            await p.close()
    other_session = await server.create_session("Another class")
    tokens["stranger"] = server.invite(other_session.id, "teacher")
    tokens["admin"] = issue_admin_token(TEST_SECRET, ttl_s=600)
    tokens["expired"] = issue_invite(
        TEST_SECRET, session.id, "teacher", ttl_s=10, now=1_000_000  # type: ignore[arg-type]
    )
    tokens["forged"] = issue_invite(
        "not-the-secret-" + "z" * 40, session.id, "teacher", ttl_s=600  # type: ignore[arg-type]
    )
    return session.id, tokens


async def test_each_role_reads_only_what_it_could_hear_or_see_live(
    live_server: LiveServer,
) -> None:
    session_id, tokens = await record_a_lesson(live_server)
    async with aiohttp.ClientSession() as http:

        async def call(
            method: str, path: str, who: str | None, **headers: str
        ) -> Reply:
            if who is not None:
                headers["Authorization"] = f"Bearer {tokens[who]}"
            async with http.request(method, live_server.url + path, headers=headers) as r:
                return Reply(r.status, await r.read(), r.headers)

        listing = await call("GET", "/api/recordings", "observer")
        assert listing.status == 200
        (rec,) = listing.json()["recordings"]
        rid = rec["id"]
        assert rec["session_id"] == session_id and rec["state"] == "finalized"
        admin_view = (await call("GET", f"/api/recordings/{rid}", "admin")).json()
        files = {t["source"]: t["file"] for t in admin_view["manifest"]["tracks"]}
        files["classroom"] = admin_view["manifest"]["review"]["classroom"]
        files["thumbnail"] = admin_view["manifest"]["review"]["thumbnail"]
        assert set(files) == {"camera", "mic", "whisper", "classroom", "thumbnail"}
        files.update(events="events.jsonl", manifest="manifest.json", tracks="tracks.jsonl")

        # -- every reader x every file ------------------------------------------------
        readers = ("teacher", "coach_a", "coach_b", "observer", "admin")
        can_read = {
            "camera": set(readers),
            "mic": set(readers),
            "classroom": set(readers),
            "thumbnail": set(readers),
            "whisper": {"teacher", "coach_a", "coach_b", "admin"},
            "events": {"admin"},
            "manifest": {"admin"},
            "tracks": {"admin"},
        }
        for item, name in files.items():
            for who in readers:
                r = await call("GET", f"/recordings/{rid}/{name}", who, Range="bytes=0-99")
                if who in can_read[item]:
                    assert r.status == 206 and len(r.body) == 100, (item, who, r.status)
                    if item not in ("events", "manifest", "tracks"):
                        assert r.body[:4] == EBML or r.body[:2] == b"\xff\xd8", item
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
                else:
                    assert r.status == 404, (item, who, r.status)
                    assert EBML not in r.body and b'"type"' not in r.body, (item, who)
                    assert b"\xff\xd8" not in r.body
            for who, status in (("stranger", 403), (None, 401), ("forged", 401), ("expired", 401)):
                r = await call("GET", f"/recordings/{rid}/{name}", who)
                assert r.status == status, (item, who, r.status)
                assert EBML not in r.body and b'"type"' not in r.body
        for bad in ("..%2Fsecret", "secret", "nope.webm", "audit.jsonl"):
            assert (await call("GET", f"/recordings/{rid}/{bad}", "admin")).status == 404
        assert (await call("GET", "/recordings/r-unknown/x.webm", "teacher")).status == 404
        assert (await call("GET", "/api/recordings", "stranger")).json()["recordings"] == []

        # -- per-role views, never the raw log --------------------------------------------
        views = {w: (await call("GET", f"/api/recordings/{rid}", w)).json() for w in readers}
        for who in ("teacher", "coach_a", "coach_b", "observer"):
            assert "manifest" not in views[who]
        observer = views["observer"]["view"]
        assert {t["source"] for t in observer["tracks"]} == {"camera", "mic"}
        assert observer["review"]["whispers"] == []
        assert observer["permissions"]["whispers"] is False
        assert [p["role"] for p in observer["participants"]] == ["teacher"]
        teacher_view = views["teacher"]["view"]
        assert {t["source"] for t in teacher_view["tracks"]} == {"camera", "mic", "whisper"}
        assert teacher_view["retention"]["days"] == live_server.config.retention_days
        assert {"Dr Chen", "Mr Okafor"} <= {p["name"] for p in teacher_view["participants"]}
        for who in ("stranger", None):
            assert (await call("GET", f"/api/recordings/{rid}", who)).status in (401, 403)

        timelines = {
            w: (await call("GET", f"/api/recordings/{rid}/timeline", w)).json()["timeline"]
            for w in readers
        }
        notes = {w: sorted(n["text"] for n in t["notes"]) for w, t in timelines.items()}
        assert notes["coach_a"] == ["for the team", "mine only", "nice energy"]
        assert notes["coach_b"] == ["for the team", "nice energy"]
        assert notes["teacher"] == ["for the team", "nice energy"]  # no private notes
        assert notes["observer"] == ["nice energy"]  # only what is shared with everyone
        assert notes["admin"] == ["for the team", "mine only", "nice energy"]
        teacher_tl = timelines["teacher"]
        assert [c["text"] for c in teacher_tl["cues"]] == ["Wait time"]
        assert teacher_tl["cues"][0]["by"] == "Dr Chen"
        assert [w["name"] for w in teacher_tl["whispers"]] == ["Dr Chen"]
        assert teacher_tl["whispers"][0]["end"] > teacher_tl["whispers"][0]["start"]
        assert [t["category"] for t in teacher_tl["tallies"]] == ["BSP"]
        obs_tl = timelines["observer"]
        assert obs_tl["cues"] == obs_tl["whispers"] == obs_tl["tallies"] == []
        assert obs_tl["presence"] == []
        assert len(obs_tl["pauses"]) == 1 and obs_tl["pauses"][0]["end"] is not None
        assert "invite" not in json.dumps(timelines["teacher"])

        # -- who watched: the teacher sees it; coaches and observers do not --------------
        for who in ("coach_a", "observer"):
            assert (await call("GET", f"/api/recordings/{rid}/audit", who)).status == 403
        audit = (await call("GET", f"/api/recordings/{rid}/audit", "teacher")).json()["entries"]
        watched = {(e["who"].get("name"), e["action"]) for e in audit}
        assert ("Visiting student teacher", "read") in watched
        assert ("Visiting student teacher", "view") in watched
        obs_read = next(
            e for e in audit if e["who"].get("role") == "observer" and e["action"] == "read"
        )
        assert obs_read["bytes"] == 100 and obs_read["range"] == "bytes=0-99"
        assert all("invite" not in e["who"] for e in audit)
        whisper_reads = [e for e in audit if e.get("item") == files["whisper"]]
        # refused reads are not reads: the observer's 404 left no entry
        assert {e["who"].get("role", "admin") for e in whisper_reads} == {
            "teacher",
            "coach",
            "admin",
        }
        assert (await call("GET", "/api/audit", "teacher")).status == 403
        everything = (await call("GET", f"/api/audit?recording={rid}", "admin")).json()
        assert len(everything["entries"]) >= len(audit)

        # -- deleting: the teacher (or an admin), not a coach or an observer --------------
        for who in ("coach_a", "observer", "stranger"):
            r = await call("DELETE", f"/api/recordings/{rid}", who)
            assert r.status == 403, (who, r.status)
        directory = live_server.config.recordings_dir / session_id / rid
        assert directory.is_dir()
        r = await call("DELETE", f"/api/recordings/{rid}", "teacher")
        assert r.status == 200 and r.json()["recording"]["state"] == "deleted"
        assert not directory.exists()
        row = await live_server.catalog.get(rid)
        assert row is not None and row.deleted and row.deleted_by == "teacher: Ms. Rivera"
        assert (await call("GET", f"/recordings/{rid}/{files['camera']}", "admin")).status == 404
        assert (await call("GET", "/api/recordings", "teacher")).json()["recordings"] == []
        deletion = (await AuditLog(live_server.store.db).query(limit=1))[0]
        assert deletion["action"] == "delete" and deletion["who"]["role"] == "teacher"
