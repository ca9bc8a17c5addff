"""A coach on a 300 kbit/s link (testkit/netns.py: tc tbf on that coach's
namespace link), with a real teacher page sending simulcast (l 320x180,
m 640x360, h 1280x720 from Chromium's fake 720p camera):

1. recording off, that coach alone: the coach's Chromium estimates its
   link (REMB), the server takes it to a smaller layer and tells the
   teacher's browser (REMB) that nobody takes the top layer: the teacher's
   encoder stops sending h (its outbound-rtp), and sends it again once the
   link is clean and the coach has moved up again;
2. recording on and a second coach on a clean link: squeezed again, the
   thin coach still sees a (smaller) picture while the other coach, the
   Recorder and the teacher's encoder keep the top layer, and the recording
   is 1280x720.

The teacher's page runs in this namespace, the thin coach's Chromium in
its own; the clean coach is an aiortc peer in a third (testkit/netns_peer.py).
Layer choices are read from the server's Consumers, pictures from the
pages' getStats; no timing is asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest

from server.media.producer import Producer
from testkit.browser import (
    CHROMIUM,
    KEEP_PEER_CONNECTIONS,
    Tab,
    launched_chromium,
    new_tab,
    page_errors,
    teacher_gone_live,
)
from testkit.netns import Netlab
from testkit.netns_peer import PeerAgent
from testkit.server import LiveServer, make_config, running_server

pytestmark = pytest.mark.browser

#: the teacher's video encodings: {rid: [bytesSent, frameWidth]}
SENT = """async () => {
    const pc = window.__pcs.at(-1), out = {};
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
            out[s.rid] = [s.bytesSent, s.frameWidth || 0];
        }
    });
    return out;
}"""

#: the coach page's classroom video: frames decoded and their width
SEEN = """async () => {
    const pc = window.__pcs.at(-1);
    let out = {decoded: 0, width: 0};
    if (!pc) return out;
    (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
            out = {decoded: s.framesDecoded || 0, width: s.frameWidth || 0};
        }
    });
    return out;
}"""


async def top_layer_growing(teacher: Tab, seconds: float = 2.0) -> bool:
    """Whether the teacher's browser sends the top layer (h) right now."""
    before = (await teacher.page.evaluate(SENT)).get("h", [0])[0]
    await asyncio.sleep(seconds)
    after = (await teacher.page.evaluate(SENT)).get("h", [0])[0]
    return bool(after > before)


async def decoding_at_width(tab: Tab) -> tuple[int, int]:
    """(frames decoded in 2 s, their width) on a coach page."""
    first = await tab.page.evaluate(SEEN)
    await asyncio.sleep(2)
    second = await tab.page.evaluate(SEEN)
    return second["decoded"] - first["decoded"], second["width"]


def camera(server: LiveServer, session_id: str) -> Producer:
    live = server.manager.get(session_id)
    assert live is not None
    return next(p for p in live.router.producers.values() if p.info.source == "camera")


async def smaller_moving_picture(tab: Tab) -> bool:
    """Whether a coach page decodes frames under 1280 wide right now."""
    frames, width = await decoding_at_width(tab)
    return frames > 0 and 0 < width < 1280


def layer_of(producer: Producer, participant_id: str) -> str | None:
    for consumer in producer.consumers.values():
        if consumer.participant_id == participant_id and consumer.current_layer is not None:
            return producer.layers[consumer.current_layer].rid
    return None


async def eventually(check: Any, what: str | Callable[[], str], timeout: float = 60.0) -> None:
    """Poll an async check (bounded); fail saying what was awaited (and,
    if ``what`` is a function, what was seen at the end)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what() if callable(what) else what}")
        await asyncio.sleep(0.5)


def consumers(producer: Producer) -> list[dict[str, object]]:
    return [c.describe() for c in producer.consumers.values()]


@pytest.mark.slow
async def test_a_coach_on_a_thin_link_gets_a_smaller_layer_and_nobody_else_does(
    netlab: Netlab, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    home, office = netlab.namespace("home"), netlab.namespace("office")
    thin_link = netlab.link(None, home, subnet=10)
    office_link = netlab.link(None, office, subnet=11)
    config = make_config(tmp_path, host=thin_link.a_ip, ice_listen_ips=(thin_link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=False)
        origin = server.url
        flags = [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
        cap = config.limits.max_video_bitrate_kbps * 1000
        async with (
            launched_chromium(CHROMIUM, flags) as at_school,
            launched_chromium(home.wrapper(str(CHROMIUM), tmp_path), flags) as at_home,
        ):
            teacher = await teacher_gone_live(
                at_school, origin, server.invite(session.id, "teacher"), init=KEEP_PEER_CONNECTIONS
            )
            thin = await new_tab(
                at_home, f"{origin}/join?token={server.invite(session.id, 'coach')}", "thin-coach",
                init=KEEP_PEER_CONNECTIONS,
            )  # fmt: skip
            await thin.wait("document.querySelector('video.remote-video')?.videoWidth > 0", 40)
            thin_id = await thin.js("sidecoach.participantId")
            producer = camera(server, session.id)
            assert [layer.rid for layer in producer.layers] == ["l", "m", "h"]
            # a clean clone's first Chromium run once took over 30 s here
            # (cause not seen; a failure now prints layers and consumers)
            await eventually(
                lambda: _async(layer_of(producer, thin_id) == "h"),
                lambda: f"thin coach on h: {producer.describe_layers()} {consumers(producer)}",
            )
            assert await top_layer_growing(teacher)

            # 1. the only coach's link gets thin: the teacher stops sending h
            thin_link.shape("down", rate_kbit=300)
            await eventually(
                lambda: _async(layer_of(producer, thin_id) in ("l", "m")), "thin coach moved down"
            )
            await eventually(lambda: _not(top_layer_growing(teacher)), "the teacher dropped h")
            assert producer.remb_bps is not None and producer.remb_bps < cap
            # what the tbf queue still holds of h plays out first
            await eventually(lambda: smaller_moving_picture(thin), "a smaller, moving picture")
            thin_link.shape("down")
            await eventually(lambda: top_layer_growing(teacher), "the teacher sends h again", 90)

            # 2. recording on, and a second coach on a clean link
            await teacher.js("sidecoach.socket.emit('recording-plan', {record: true}, () => {})")
            clean = PeerAgent(
                netlab, office, "clean-coach", url=origin,
                token=server.invite(session.id, "coach"), ice_ip=office_link.b_ip,
            )  # fmt: skip
            clean_id = (await clean.wait_event("joined"))["participantId"]
            await clean.wait_decoding()
            thin_link.shape("down", rate_kbit=300)
            await eventually(
                lambda: _async(layer_of(producer, thin_id) in ("l", "m")), "thin coach moved down"
            )
            # what the tbf queue still holds of h plays out first
            await eventually(lambda: smaller_moving_picture(thin), "a smaller, moving picture")
            # on a loaded machine the clean coach's own receiver can lose a
            # burst and dip for a moment: it is on h again while the thin one
            # stays down (what a clean coach notices), and the Recorder never left h
            assert layer_of(producer, "recorder") == "h"
            await eventually(
                lambda: _async(
                    layer_of(producer, clean_id) == "h"
                    and layer_of(producer, thin_id) in ("l", "m")
                ),
                lambda: f"clean coach on h, thin below: {consumers(producer)}",
            )
            assert await top_layer_growing(teacher)
            assert (await clean.report())["video"]["width"] == 1280
            await thin.screenshot("coach-on-300kbit")
            assert page_errors(teacher, thin) == []
            clean.stop()
            await server.manager.end_session(session.id)
    # the Recorder never followed the thin coach down: it recorded the top
    # layer (a loaded machine's Chromium may itself drop h for a moment, CPU
    # adaptation: then the Recorder takes the best layer that still flows)
    recorded = recorded_camera_widths(server, session.id)
    assert recorded and 320 not in recorded, recorded
    assert recorded.count(1280) >= 0.75 * len(recorded), recorded


async def _async(value: bool) -> bool:
    return value


async def _not(check: Any) -> bool:
    return not await check


def recorded_camera_widths(server: LiveServer, session_id: str) -> list[int]:
    """The width of every keyframe in the recorded camera file."""
    (directory,) = list((server.config.recordings_dir / session_id).iterdir())
    (path,) = [p for p in directory.iterdir() if "-camera-" in p.name]
    widths = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.size:
                for frame in packet.decode():
                    widths.append(frame.width)
    return widths
