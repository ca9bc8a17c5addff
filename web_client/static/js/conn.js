// One participant's connection: a socket.io socket for signaling and one
// RTCPeerConnection, negotiated by the server (always the offerer; see
// docs/PROTOCOL.md). A dropped network is rejoined automatically with the
// same invite: new socket, new peer connection, `join` again, republish.
//
// Recovering from a network cut (measured in tests/browser/test_network_pages.py
// and scripts/bench_network.py): a short cut needs nothing; ICE consent holds
// on both sides for ~30 s, so media flows again as soon as the link does.
// Chromium calls the media connection "disconnected" ~7 s into a cut and
// "failed" 10 s later; the server (aiortc) cannot restart ICE, so a media
// path that stays "disconnected" for DISCONNECTED_REJOIN_MS is rejoined
// without waiting for "failed" (the server's seats replace the old
// participant, nobody is duplicated), and reconnect attempts stay frequent
// so the first one after the link returns succeeds quickly.

import { io } from "/vendor/socket.io.esm.min.js";

/** Join errors that no retry can fix. */
const FATAL_JOIN_ERRORS = new Set([
  "unauthorized",
  "token_expired",
  "session_not_found",
  "session_ended",
  "wrong_session",
  "forbidden",
  "invalid_message",
]);

/** `removed` codes after which rejoining would only fight another tab. */
const FATAL_REMOVALS = new Set(["replaced"]);

const CALL_TIMEOUT_MS = 10000;
const ICE_GATHER_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 5000;
const MAX_BACKOFF_MS = 3000;
/** The media connection "disconnected" this long: rejoin (no ICE restart with this server). */
const DISCONNECTED_REJOIN_MS = 5000;

/**
 * Simulcast layers of a camera, when the server's offer asks for them
 * (a=simulcast:recv l;m;h): each coach gets the one its link can take and
 * the recording the best. Sizes are of the camera's picture (720p: 320x180,
 * 640x360, 1280x720); bitrates stay under the server's cap (b=AS).
 */
const SIMULCAST_LAYERS = {
  l: { scaleResolutionDownBy: 4, maxBitrate: 150_000, maxFramerate: 15 },
  m: { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  h: { scaleResolutionDownBy: 1, maxBitrate: 1_700_000 },
};

/**
 * Each encoding's settings for this camera. Chromium sends fewer layers from
 * a small camera (640x360: two, 320x180: one) and drops the last encodings,
 * "h" first: the ones kept get the best layers' settings, so the best layer
 * sent (the one the recording keeps) is the camera's own size.
 * @param {MediaStreamTrack | null} track
 * @param {string[]} rids the encodings' rids, lowest layer first
 * @returns {Record<string, Partial<RTCRtpEncodingParameters>>}
 */
function simulcastLayersFor(track, rids) {
  const { width = 1280, height = 720 } = track ? track.getSettings() : {};
  const pixels = width * height;
  const sent = Math.min(rids.length, pixels >= 960 * 540 ? 3 : pixels >= 480 * 270 ? 2 : 1);
  const best = ["l", "m", "h"].slice(3 - sent);
  /** @type {Record<string, Partial<RTCRtpEncodingParameters>>} */
  const out = {};
  rids.forEach((rid, i) => {
    out[rid] = i < sent ? { ...SIMULCAST_LAYERS[best[i]], active: true } : { active: false };
  });
  return out;
}

/** Give a sender's simulcast encodings (made from the offer) their layer settings. */
async function configureSimulcast(sender) {
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length < 2) return;
  const layers = simulcastLayersFor(sender.track, params.encodings.map((enc) => enc.rid || ""));
  for (const enc of params.encodings) Object.assign(enc, layers[enc.rid || ""] || {});
  try {
    await sender.setParameters(params);
  } catch (err) {
    console.warn("sidecoach: simulcast settings refused", err);
  }
}

/** Resolve when ICE gathering is complete (no trickle), or after a timeout. */
function iceGatheringComplete(pc, timeoutMs = ICE_GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class Connection {
  /**
   * @param {{token: string, sessionId: string, name?: string}} opts
   * Callbacks (all optional): onstate(state, detail), onjoined(reply, isRejoin),
   * ontrack(remote), ontrackremoved(remote), onpublished(pub), onquality(q).
   * Server events are subscribed with on(event, fn(data, ack?)).
   */
  constructor({ token, sessionId, name }) {
    this.token = token;
    this.sessionId = sessionId;
    this.name = name || undefined;
    this.state = "idle"; // connecting | joined | reconnecting | ended | failed | closed
    this.detail = "";
    this.socket = null;
    this.pc = null;
    this.joinReply = null;
    this.joins = 0;
    this.drops = 0;
    this.negotiations = 0;
    this.quality = "unknown";
    this.publications = [];
    this._pending = new Map(); // producerId -> publication awaiting its m-line
    this._inflight = new Set(); // publish calls not yet answered
    this.remote = new Map(); // mid -> {mid, info, track}
    this._handlers = new Map();
    this._attempt = 0;
    this._retryTimer = null;
    this._offerChain = Promise.resolve();
    this._pcReady = null;
    this._statsTimer = null;
    this._stallTimer = null;
    this._lastStats = null;
    window.addEventListener("online", () => {
      if (this.state === "reconnecting") this._retryNow();
    });
    window.addEventListener("pagehide", () => this.close());
  }

  on(event, fn) {
    this._handlers.set(event, fn);
    return this;
  }

  start() {
    this._connect();
  }

  /** Leave for good (the page is closing or the user stopped). */
  close() {
    if (this.state === "closed") return;
    const socket = this.socket;
    this._teardown();
    if (socket) {
      socket.emit("leave", {});
      socket.disconnect();
    }
    this._setState("closed");
  }

  /** Send a message with an acknowledgement; never throws. */
  async call(event, data = {}) {
    const socket = this.socket;
    if (!socket || !socket.connected) {
      return { ok: false, error: { code: "offline", message: "Not connected right now" } };
    }
    try {
      return await socket.timeout(CALL_TIMEOUT_MS).emitWithAck(event, data);
    } catch {
      return { ok: false, error: { code: "timeout", message: "The server did not answer" } };
    }
  }

  /** Publish a local track now (or as soon as joined) and after every rejoin. */
  async publish(source, kind, track) {
    const pub = { source, kind, track, producerId: null, published: false, sender: null };
    this.publications.push(pub);
    if (this.state !== "joined") return { ok: true, queued: true, pub };
    const reply = await this._publish(pub);
    if (!reply.ok) this.publications = this.publications.filter((p) => p !== pub);
    return { ...reply, pub };
  }

  async unpublish(pub) {
    this.publications = this.publications.filter((p) => p !== pub);
    if (pub.producerId) this._pending.delete(pub.producerId);
    if (pub.sender) {
      try {
        await pub.sender.replaceTrack(null);
      } catch {
        /* the peer connection is gone */
      }
    }
    if (pub.producerId && this.state === "joined") {
      return this.call("unpublish", { producerId: pub.producerId });
    }
    return { ok: true };
  }

  /** Swap the track of a publication (e.g. another camera) without renegotiating. */
  async replaceTrack(pub, track) {
    pub.track = track;
    if (pub.sender) await pub.sender.replaceTrack(track);
  }

  // -- internals ---------------------------------------------------------

  _setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.onstate?.(state, detail);
  }

  _connect() {
    this._retryTimer = null;
    if (this.state === "closed" || this.state === "ended" || this.state === "failed") return;
    this._setState(this.joins ? "reconnecting" : "connecting", this.joins ? "Rejoining…" : "");
    const socket = io({
      path: "/socket.io",
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      forceNew: true,
    });
    this.socket = socket;
    let readyResolve;
    this._pcReady = new Promise((resolve) => (readyResolve = resolve));
    socket.on("connect", () => this._join(socket, readyResolve));
    socket.on("connect_error", () =>
      this._dropped(socket, "Can't reach the server. Trying again automatically…"),
    );
    socket.on("disconnect", () => this._dropped(socket, "Connection lost. Rejoining automatically…"));
    socket.on("offer", (offer) => {
      this._offerChain = this._offerChain
        .then(() => this._onOffer(socket, offer))
        .catch((err) => console.error("sidecoach: negotiation failed", err));
    });
    socket.on("published", (data) => {
      const pub = this.publications.find((p) => p.producerId === data?.producerId);
      if (pub) {
        pub.published = true;
        this.onpublished?.(pub);
      }
    });
    // The server gave up on this participant (its media failed, or its seat
    // was taken over by the same invite elsewhere): rejoin like after a drop,
    // unless rejoining cannot help.
    socket.on("removed", (data) => {
      if (socket !== this.socket) return;
      const message = data?.message || "Removed by the server";
      if (FATAL_REMOVALS.has(data?.code)) {
        this._teardown();
        socket.disconnect();
        this._setState("failed", "This invite was opened on another device or tab.");
        return;
      }
      this._dropped(socket, `${message}. Rejoining automatically…`);
    });
    socket.on("session-ended", (data) => {
      if (socket !== this.socket) return;
      this._handlers.get("session-ended")?.(data);
      this._teardown();
      socket.disconnect();
      this._setState("ended", "The session has ended");
    });
    for (const [event, fn] of this._handlers) {
      if (event === "session-ended") continue;
      socket.on(event, (...args) => {
        if (socket === this.socket) fn(...args);
      });
    }
  }

  async _join(socket, readyResolve) {
    const msg = { token: this.token, sessionId: this.sessionId };
    if (this.name) msg.name = this.name;
    const reply = await this.call("join", msg);
    if (socket !== this.socket) return;
    if (!reply.ok) {
      const code = reply.error?.code;
      if (FATAL_JOIN_ERRORS.has(code)) {
        this._teardown();
        socket.disconnect();
        this._setState(code === "session_ended" ? "ended" : "failed", reply.error.message);
        return;
      }
      this._dropped(socket, reply.error?.message || "Could not join");
      return;
    }
    const isRejoin = this.joins > 0;
    this.joins += 1;
    this._attempt = 0;
    this.joinReply = reply;
    this.pc = this._newPeerConnection(reply.iceServers || []);
    readyResolve();
    this._setState("joined");
    this.onjoined?.(reply, isRejoin);
    for (const pub of this.publications) {
      pub.producerId = null;
      pub.published = false;
      pub.sender = null;
      const r = await this._publish(pub);
      if (!r.ok) console.warn("sidecoach: republish failed", pub.source, r.error);
    }
  }

  _newPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: this.joinReply?.iceTransportPolicy || "all", // "relay": TURN only
      bundlePolicy: "max-bundle",
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      clearTimeout(this._stallTimer);
      this._stallTimer = null;
      if (pc.connectionState === "failed") {
        this._dropped(this.socket, "The video connection failed. Rejoining automatically…");
      } else if (pc.connectionState === "disconnected") {
        this._setQuality("poor");
        // back by itself after a short cut; a longer one is rejoined
        this._stallTimer = setTimeout(() => {
          if (pc === this.pc && pc.connectionState === "disconnected") {
            this._dropped(this.socket, "The video connection was lost. Rejoining automatically…");
          }
        }, DISCONNECTED_REJOIN_MS);
      }
    });
    clearInterval(this._statsTimer);
    this._lastStats = null;
    this._statsTimer = setInterval(() => this._sampleStats(pc), 2000);
    return pc;
  }

  async _publish(pub) {
    const task = (async () => {
      const reply = await this.call("publish", { source: pub.source, kind: pub.kind });
      if (reply.ok) {
        pub.producerId = reply.producerId;
        this._pending.set(reply.producerId, pub);
      }
      return reply;
    })();
    this._inflight.add(task);
    try {
      return await task;
    } finally {
      this._inflight.delete(task);
    }
  }

  async _onOffer(socket, offer) {
    await this._pcReady;
    if (socket !== this.socket || !this.pc) return;
    const pc = this.pc;
    const publish = offer.publish || {};
    const tracks = offer.tracks || {};
    if (Object.values(publish).some((id) => !this._pending.has(id)) && this._inflight.size) {
      await Promise.allSettled([...this._inflight]);
    }
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    for (const t of pc.getTransceivers()) {
      const pub = t.mid != null ? this._pending.get(publish[t.mid]) : undefined;
      if (pub) {
        await t.sender.replaceTrack(pub.track);
        t.direction = "sendonly";
        if (pub.kind === "video") await configureSimulcast(t.sender);
        pub.sender = t.sender;
        this._pending.delete(pub.producerId);
      }
    }
    // Incoming tracks: the latest offer says what each m-line carries.
    const seen = new Set();
    for (const t of pc.getTransceivers()) {
      const info = t.mid != null ? tracks[t.mid] : undefined;
      if (!info) continue;
      seen.add(t.mid);
      const prev = this.remote.get(t.mid);
      if (prev && prev.info.consumerId === info.consumerId) continue;
      if (prev) this.ontrackremoved?.(prev);
      const remote = { mid: t.mid, info, track: t.receiver.track };
      this.remote.set(t.mid, remote);
      this.ontrack?.(remote);
    }
    for (const [mid, remote] of [...this.remote]) {
      if (!seen.has(mid)) {
        this.remote.delete(mid);
        this.ontrackremoved?.(remote);
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    if (socket !== this.socket || pc !== this.pc) return;
    const reply = await this.call("answer", {
      negotiationId: offer.negotiationId,
      sdp: pc.localDescription.sdp,
    });
    if (reply.ok) this.negotiations += 1;
    else console.warn("sidecoach: answer refused", reply.error);
  }

  _dropped(socket, reason) {
    if (!socket || socket !== this.socket) return;
    if (["closed", "ended", "failed"].includes(this.state)) return;
    this.drops += 1;
    this._teardown();
    socket.disconnect();
    // frequent attempts (with jitter, so a whole class does not retry in step)
    const delay = Math.min(MAX_BACKOFF_MS, 400 * 2 ** this._attempt) * (0.8 + 0.4 * Math.random());
    this._attempt += 1;
    this._setState("reconnecting", reason);
    this._retryTimer = setTimeout(() => this._connect(), delay);
  }

  _retryNow() {
    if (this._retryTimer) {
      clearTimeout(this._retryTimer);
      this._connect();
    }
  }

  _teardown() {
    if (this._retryTimer) clearTimeout(this._retryTimer);
    this._retryTimer = null;
    clearInterval(this._statsTimer);
    this._statsTimer = null;
    clearTimeout(this._stallTimer);
    this._stallTimer = null;
    this.socket?.off();
    this.socket = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    for (const remote of this.remote.values()) this.ontrackremoved?.(remote);
    this.remote.clear();
    this._pending.clear();
    for (const pub of this.publications) {
      pub.published = false;
      pub.sender = null;
    }
    this._setQuality("unknown");
  }

  _setQuality(q) {
    if (q === this.quality) return;
    this.quality = q;
    this.onquality?.(q);
  }

  async _sampleStats(pc) {
    if (pc !== this.pc || pc.connectionState !== "connected") return;
    let rtt = null;
    let lost = 0;
    let received = 0;
    try {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime != null) {
          rtt = s.currentRoundTripTime;
        }
        if (s.type === "inbound-rtp") {
          lost += s.packetsLost || 0;
          received += s.packetsReceived || 0;
        }
      });
    } catch {
      return;
    }
    const prev = this._lastStats;
    this._lastStats = { lost, received };
    let lossRate = 0;
    if (prev && received > prev.received) {
      lossRate = Math.max(0, lost - prev.lost) / (received - prev.received + Math.max(0, lost - prev.lost));
    }
    let q = "good";
    if ((rtt != null && rtt > 0.4) || lossRate > 0.08) q = "poor";
    else if ((rtt != null && rtt > 0.2) || lossRate > 0.02) q = "fair";
    this._setQuality(q);
  }
}

/** The page's data from the server (token, role, session...). */
/** Keep the room's shared state (presence, who is whispering, recording)
 * up to date on `state` and re-render on every change. */
export function followRoom(conn, state, render) {
  return conn
    .on("participant-joined", (p) => {
      state.participants.set(p.id, p);
      render();
    })
    .on("participant-left", (p) => {
      state.participants.delete(p.id);
      render();
    })
    .on("whisper-state", (data) => {
      state.whispering = data.whispering || [];
      render();
    })
    .on("recording-state", (data) => {
      state.recording = data.state;
      state.recordingInfo = data;
      state.recordingReason = data.reason || "";
      render();
    })
    .on("server-draining", (data) => {
      state.draining = true;
      conn.detail = data?.message || "The server is restarting.";
      render();
    });
}

export function readPage() {
  const el = document.getElementById("sidecoach-page");
  return el ? JSON.parse(el.textContent) : {};
}
