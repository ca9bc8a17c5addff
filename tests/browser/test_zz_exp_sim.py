from __future__ import annotations
import asyncio, json, os, time
from pathlib import Path
import pytest
from tests.browser.conftest import CHROMIUM, launched_chromium, new_tab
from tests.conftest import make_config, running_server
from tests.netns import Netlab

pytestmark = pytest.mark.browser
KEEP = """(() => { const N = window.RTCPeerConnection; window.__pcs = [];
  window.RTCPeerConnection = class extends N { constructor(...a) { super(...a); window.__pcs.push(this); } }; })();"""
OUT = """async () => { const pc = window.__pcs.at(-1); if (!pc) return null; const st = await pc.getStats(); const o = {};
  st.forEach(s => { if (s.type === 'outbound-rtp' && s.kind === 'video') o[s.rid] = [s.frameWidth, s.framesPerSecond, Math.round(s.bytesSent/1000), s.targetBitrate]; });
  st.forEach(s => { if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) o.aob = s.availableOutgoingBitrate; });
  return o; }"""
IN = """async () => { const pc = window.__pcs.at(-1); if (!pc) return null; const st = await pc.getStats(); let o = null;
  st.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') o = {w: s.frameWidth, h: s.frameHeight, fps: s.framesPerSecond, dec: s.framesDecoded, freezes: s.freezeCount, frozen: s.totalFreezesDuration, lost: s.packetsLost, nack: s.nackCount, pli: s.pliCount}; });
  return o; }"""

async def test_exp(netlab: Netlab, tmp_path: Path) -> None:
    home = netlab.namespace("home")
    link = netlab.link(None, home, subnet=9)
    config = make_config(tmp_path, host=link.a_ip, ice_listen_ips=(link.a_ip,))
    async with running_server(config) as server:
        session = await server.create_session(recording=os.environ.get("REC") == "1")
        origin = server.url
        flags = [f"--unsafely-treat-insecure-origin-as-secure={origin}"]
        async with launched_chromium(CHROMIUM, flags) as b, launched_chromium(home.wrapper(str(CHROMIUM), tmp_path), flags) as hb:
            teacher = await new_tab(b, f"{origin}/join?token={server.invite(session.id, 'teacher')}", "teacher", init=KEEP)
            await teacher.wait("window.sidecoach && sidecoach.state === 'joined'", timeout=20)
            await teacher.page.click("#go-live")
            await teacher.wait("sidecoach.live === 'live'", timeout=40)
            clean = None
            if os.environ.get("CLEAN") == "1":
                clean = server.participant(session.id, "coach"); clean.ice_ips = (link.a_ip,)
                await clean.join()
            thin = await new_tab(hb, f"{origin}/join?token={server.invite(session.id, 'coach')}", "thin", init=KEEP)
            live = server.manager.get(session.id)
            t0 = time.monotonic()
            async def show(label):
                cam = next(p for p in live.router.producers.values() if p.kind == "video")
                print(f"{label} t={time.monotonic()-t0:.0f} layers={[ (l['rid'], l['active'], l['bitrate']//1000) for l in cam.describe_layers()]} remb={cam.remb_bps}")
                for c in cam.consumers.values(): d = c.describe(); print("   ", d['participant'][-4:], d['layer'], d['targetLayer'], d['estimate'], d['loss'], d['switches'])
                print("    thin", await thin.page.evaluate(IN))
                print("    teacher", await teacher.page.evaluate(OUT))
            for i in range(4):
                await asyncio.sleep(3); await show("clean")
            link.shape("down", rate_kbit=300)
            for i in range(int(os.environ.get("SQ", "8"))):
                await asyncio.sleep(3); await show("300k")
            link.shape("down")
            for i in range(int(os.environ.get("RS", "8"))):
                await asyncio.sleep(3); await show("restored")
            if clean: await clean.close()
