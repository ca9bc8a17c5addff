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
import { ERROR, EVENT, REMOVAL, REQUEST, TRANSPORT } from "./protocol.js";
import { MediaHealth } from "./media_health.js";

/** @import { Socket } from "/vendor/socket.io.esm.min.js" */
/**
 * @import { ClientToServer, EventName, JoinReply, Kind, Offer, Participant, RecordingInfo,
 *   RequestMessage, RequestName, RequestReply, ServerToClient, Source, TrackInfo, Whisperer } from "../../types/wire"
 */
/** @import { ErrorCode, RemovalCode } from "./protocol.js" */

/** @typedef {"idle" | "connecting" | "joined" | "reconnecting" | "ended" | "failed" | "closed"} ConnState */
/** @typedef {"unknown" | "good" | "fair" | "poor"} Quality */

/**
 * A local track this page publishes (again after every rejoin).
 * @typedef {object} Publication
 * @property {Source} source
 * @property {Kind} kind
 * @property {MediaStreamTrack} track
 * @property {string | null} producerId the server's id, once `publish` is answered
 * @property {boolean} published media is flowing (the server said `published`)
 * @property {RTCRtpSender | null} sender the sender of its m-line, once offered
 */

/**
 * A track the server forwards to this page, on m-line `mid`.
 * @typedef {{mid: string, info: TrackInfo, track: MediaStreamTrack}} Remote
 */

/** Join errors that no retry can fix. @type {ReadonlySet<ErrorCode>} */
const FATAL_JOIN_ERRORS = new Set([
  ERROR.UNAUTHORIZED,
  ERROR.TOKEN_EXPIRED,
  ERROR.SESSION_NOT_FOUND,
  ERROR.SESSION_ENDED,
  ERROR.WRONG_SESSION,
  ERROR.FORBIDDEN,
  ERROR.INVALID_MESSAGE,
]);

/**
 * Join errors that only mean "in a moment" (the lesson is moving to another
 * server): the page keeps saying it is rejoining, and retries.
 * @type {ReadonlySet<ErrorCode>}
 */
const TRANSIENT_JOIN_ERRORS = new Set([
  ERROR.NODE_UNAVAILABLE,
  ERROR.SERVER_DRAINING,
  ERROR.REDIS_UNAVAILABLE,
]);

/** `removed` codes after which rejoining would only fight another tab. @type {ReadonlySet<RemovalCode>} */
const FATAL_REMOVALS = new Set([REMOVAL.REPLACED, REMOVAL.SIGNED_OUT]);

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
 * @type {Record<string, Partial<RTCRtpEncodingParameters>>}
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
  /** @type {MediaTrackSettings} */
  const settings = track ? track.getSettings() : {};
  const pixels = (settings.width ?? 1280) * (settings.height ?? 720);
  const sent = Math.min(rids.length, pixels >= 960 * 540 ? 3 : pixels >= 480 * 270 ? 2 : 1);
  const best = ["l", "m", "h"].slice(3 - sent);
  /** @type {Record<string, Partial<RTCRtpEncodingParameters>>} */
  const out = {};
  rids.forEach((rid, i) => {
    out[rid] = i < sent ? { ...SIMULCAST_LAYERS[best[i]], active: true } : { active: false };
  });
  return out;
}

/**
 * Give a sender's simulcast encodings (made from the offer) their layer settings.
 * @param {RTCRtpSender} sender
 */
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

/**
 * Resolve when ICE gathering is complete (no trickle), or after a timeout.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<void>}
 */
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

/**
 * One participant's signaling socket and peer connection, rejoined after
 * every drop. The page sets the callbacks it needs (each optional) and
 * subscribes to server events with on(event, fn) before start().
 */
export class Connection {
  /**
   * @param {{token: string, sessionId: string, name?: string}} opts
   */
  constructor({ token, sessionId, name }) {
    this.token = token;
    this.sessionId = sessionId;
    /** the name to join with (else the invite's) */
    this.name = name || undefined;
    /** @type {ConnState} */
    this.state = "idle";
    /** words for the state (why it dropped, why it failed) */
    this.detail = "";
    /** @type {Socket<ServerToClient, ClientToServer> | null} */
    this.socket = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {JoinReply | null} */
    this.joinReply = null;
    this.joins = 0;
    this.drops = 0;
    this.negotiations = 0;
    /** @type {Quality} */
    this.quality = "unknown";
    /** @type {Publication[]} */
    this.publications = [];
    /** producerId -> publication awaiting its m-line @type {Map<string, Publication>} */
    this._pending = new Map();
    /** publish calls not yet answered @type {Set<Promise<unknown>>} */
    this._inflight = new Set();
    /** mid -> what the server forwards on it @type {Map<string, Remote>} */
    this.remote = new Map();
    /** @type {Map<EventName, (...args: any[]) => void>} */
    this._handlers = new Map();
    this._attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._retryTimer = undefined;
    /** @type {Promise<unknown>} */
    this._offerChain = Promise.resolve();
    /** resolved once this socket's peer connection exists @type {Promise<void> | null} */
    this._pcReady = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._statsTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._stallTimer = undefined;
    /** @type {{lost: number, received: number} | null} */
    this._lastStats = null;
    /** @type {((state: ConnState, detail: string) => void) | undefined} */
    this.onstate = undefined;
    /** @type {((reply: JoinReply, isRejoin: boolean) => void) | undefined} */
    this.onjoined = undefined;
    /** @type {((remote: Remote) => void) | undefined} */
    this.ontrack = undefined;
    /** @type {((remote: Remote) => void) | undefined} */
    this.ontrackremoved = undefined;
    /** @type {((pub: Publication) => void) | undefined} */
    this.onpublished = undefined;
    /** @type {((quality: Quality) => void) | undefined} */
    this.onquality = undefined;
    /** can media flow (media_health.js): "Connecting…", then the reason @type {(() => void) | undefined} */
    this.onmedia = undefined;
    this.health = new MediaHealth(() => this.onmedia?.());
    window.addEventListener("online", () => {
      if (this.state === "reconnecting") this._retryNow();
    });
    window.addEventListener("pagehide", () => this.close());
  }

  /**
   * Handle a server event on every socket of this connection (one handler per event).
   * @template {EventName} K
   * @param {K} event
   * @param {ServerToClient[K]} fn
   * @returns {this}
   */
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
    this.health.stop();
    const socket = this.socket;
    this._teardown();
    if (socket) {
      socket.emit(REQUEST.LEAVE, {});
      socket.disconnect();
    }
    this._setState("closed");
  }

  /**
   * Send a request with an acknowledgement and wait for its reply (or a
   * timeout); never throws.
   * @template {RequestName} K
   * @param {K} event
   * @param {RequestMessage<K>} data
   * @returns {Promise<RequestReply<K>>}
   */
  async call(event, data) {
    const socket = this.socket;
    if (!socket || !socket.connected) {
      return { ok: false, error: { code: ERROR.OFFLINE, message: "Not connected right now" } };
    }
    // socket.io's types cannot follow a generic event name through emitWithAck
    const emitter = /** @type {{emitWithAck(event: K, data: RequestMessage<K>): Promise<RequestReply<K>>}} */ (
      /** @type {unknown} */ (socket.timeout(CALL_TIMEOUT_MS))
    );
    try {
      return await emitter.emitWithAck(event, data);
    } catch {
      return { ok: false, error: { code: ERROR.TIMEOUT, message: "The server did not answer" } };
    }
  }

  /**
   * Publish a local track now (or as soon as joined) and after every rejoin.
   * @param {Source} source
   * @param {Kind} kind
   * @param {MediaStreamTrack} track
   * @returns {Promise<(RequestReply<"publish"> | {ok: true, queued: true}) & {pub: Publication}>}
   */
  async publish(source, kind, track) {
    /** @type {Publication} */
    const pub = { source, kind, track, producerId: null, published: false, sender: null };
    this.publications.push(pub);
    if (this.state !== "joined") return { ok: true, queued: true, pub };
    const reply = await this._publish(pub);
    if (!reply.ok) this.publications = this.publications.filter((p) => p !== pub);
    return { ...reply, pub };
  }

  /**
   * Stop publishing (and stop republishing after a rejoin).
   * @param {Publication} pub
   * @returns {Promise<RequestReply<"unpublish">>}
   */
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
      return this.call(REQUEST.UNPUBLISH, { producerId: pub.producerId });
    }
    return { ok: true };
  }

  /**
   * Swap the track of a publication (e.g. another camera) without renegotiating.
   * @param {Publication} pub
   * @param {MediaStreamTrack} track
   */
  async replaceTrack(pub, track) {
    pub.track = track;
    if (pub.sender) await pub.sender.replaceTrack(track);
  }

  // -- internals ---------------------------------------------------------

  /**
   * @param {ConnState} state
   * @param {string} [detail]
   */
  _setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.onstate?.(state, detail);
  }

  _connect() {
    this._retryTimer = undefined;
    if (this.state === "closed" || this.state === "ended" || this.state === "failed") return;
    this._setState(this.joins ? "reconnecting" : "connecting", this.joins ? "Rejoining…" : "");
    /** @type {Socket<ServerToClient, ClientToServer>} */
    const socket = io({
      path: "/socket.io",
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnection: false,
      timeout: CONNECT_TIMEOUT_MS,
      forceNew: true,
    });
    this.socket = socket;
    /** @type {() => void} */
    let readyResolve = () => {};
    this._pcReady = new Promise((resolve) => {
      readyResolve = resolve;
    });
    socket.on(TRANSPORT.CONNECT, () => this._join(socket, readyResolve));
    socket.on(TRANSPORT.CONNECT_ERROR, () =>
      this._dropped(socket, "Can't reach the server. Trying again automatically…"),
    );
    socket.on(TRANSPORT.DISCONNECT, () => this._dropped(socket, "Connection lost. Rejoining automatically…"));
    socket.on(EVENT.OFFER, (offer) => {
      this._offerChain = this._offerChain
        .then(() => this._onOffer(socket, offer))
        .catch((err) => console.error("sidecoach: negotiation failed", err));
    });
    socket.on(EVENT.PUBLISHED, (data) => {
      const pub = this.publications.find((p) => p.producerId === data?.producerId);
      if (pub) {
        pub.published = true;
        this.onpublished?.(pub);
      }
    });
    // The server gave up on this participant (its media failed, or its seat
    // was taken over by the same invite elsewhere): rejoin like after a drop,
    // unless rejoining cannot help.
    socket.on(EVENT.REMOVED, (data) => {
      if (socket !== this.socket) return;
      this.health.removed(data);
      const message = data?.message || "Removed by the server";
      if (FATAL_REMOVALS.has(data?.code)) {
        this._teardown();
        socket.disconnect();
        this._setState(
          "failed",
          data?.code === REMOVAL.SIGNED_OUT
            ? "You were signed out. Sign in again from your home page."
            : "This invite was opened on another device or tab.",
        );
        return;
      }
      this._dropped(socket, `${message}. Rejoining automatically…`);
    });
    socket.on(EVENT.SESSION_ENDED, (data) => {
      if (socket !== this.socket) return;
      this._handlers.get(EVENT.SESSION_ENDED)?.(data);
      this.health.stop();
      this._teardown();
      socket.disconnect();
      this._setState("ended", "The session has ended");
    });
    for (const [event, fn] of this._handlers) {
      if (event === EVENT.SESSION_ENDED) continue;
      socket.on(event, /** @param {any[]} args */ (...args) => {
        if (socket === this.socket) fn(...args);
      });
    }
  }

  /**
   * @param {Socket<ServerToClient, ClientToServer>} socket
   * @param {() => void} readyResolve
   */
  async _join(socket, readyResolve) {
    /** @type {RequestMessage<"join">} */
    const msg = { token: this.token, sessionId: this.sessionId };
    if (this.name) msg.name = this.name;
    const reply = await this.call(REQUEST.JOIN, msg);
    if (socket !== this.socket) return;
    if (!reply.ok) {
      const code = reply.error?.code;
      if (FATAL_JOIN_ERRORS.has(code)) {
        this.health.stop();
        this._teardown();
        socket.disconnect();
        this._setState(code === ERROR.SESSION_ENDED ? "ended" : "failed", reply.error.message);
        return;
      }
      const transient = TRANSIENT_JOIN_ERRORS.has(code);
      this._dropped(socket, transient ? "Rejoining…" : reply.error?.message || "Could not join");
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

  /**
   * @param {RTCIceServer[]} iceServers
   * @returns {RTCPeerConnection}
   */
  _newPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: this.joinReply?.iceTransportPolicy || "all", // "relay": TURN only
      bundlePolicy: "max-bundle",
    });
    this.health.watch(pc);
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      clearTimeout(this._stallTimer);
      this._stallTimer = undefined;
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

  /**
   * @param {Publication} pub
   * @returns {Promise<RequestReply<"publish">>}
   */
  async _publish(pub) {
    const task = (async () => {
      const reply = await this.call(REQUEST.PUBLISH, { source: pub.source, kind: pub.kind });
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

  /**
   * @param {Socket<ServerToClient, ClientToServer>} socket
   * @param {Offer} offer
   */
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
      const producerId = t.mid != null ? publish[t.mid] : undefined;
      const pub = producerId ? this._pending.get(producerId) : undefined;
      if (producerId && pub) {
        await t.sender.replaceTrack(pub.track);
        t.direction = "sendonly";
        if (pub.kind === "video") await configureSimulcast(t.sender);
        pub.sender = t.sender;
        this._pending.delete(producerId);
      }
    }
    // Incoming tracks: the latest offer says what each m-line carries.
    /** @type {Set<string>} */
    const seen = new Set();
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      const info = mid != null ? tracks[mid] : undefined;
      if (mid == null || !info) continue;
      seen.add(mid);
      const prev = this.remote.get(mid);
      if (prev && prev.info.consumerId === info.consumerId) continue;
      if (prev) this.ontrackremoved?.(prev);
      const remote = { mid, info, track: t.receiver.track };
      this.remote.set(mid, remote);
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
    const reply = await this.call(REQUEST.ANSWER, {
      negotiationId: offer.negotiationId,
      sdp: pc.localDescription?.sdp ?? "",
    });
    if (reply.ok) {
      this.negotiations += 1;
      this.health.negotiated();
    }
    else console.warn("sidecoach: answer refused", reply.error);
  }

  /**
   * The socket (or its media) is gone: tear down and rejoin after a backoff.
   * @param {Socket<ServerToClient, ClientToServer> | null} socket
   * @param {string} reason
   */
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
    this._retryTimer = undefined;
    clearInterval(this._statsTimer);
    this._statsTimer = undefined;
    clearTimeout(this._stallTimer);
    this._stallTimer = undefined;
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

  /** @param {Quality} q */
  _setQuality(q) {
    if (q === this.quality) return;
    this.quality = q;
    this.onquality?.(q);
  }

  /** @param {RTCPeerConnection} pc */
  async _sampleStats(pc) {
    if (pc !== this.pc || pc.connectionState !== "connected") return;
    /** @type {number | null} */
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
    /** @type {Quality} */
    let q = "good";
    if ((rtt != null && rtt > 0.4) || lossRate > 0.08) q = "poor";
    else if ((rtt != null && rtt > 0.2) || lossRate > 0.02) q = "fair";
    this._setQuality(q);
  }
}

/**
 * What followRoom keeps up to date.
 * @typedef {object} RoomState
 * @property {Map<string, Participant>} participants
 * @property {Whisperer[]} whispering
 * @property {string} recording the recording's state ("unknown" before the join)
 * @property {RecordingInfo | null} recordingInfo
 * @property {string} [recordingReason]
 * @property {boolean} [draining]
 */

/**
 * Keep the room's shared state (presence, who is whispering, recording)
 * up to date on `state` and re-render on every change.
 * @param {Connection} conn
 * @param {RoomState} state
 * @param {() => void} render
 * @returns {Connection}
 */
export function followRoom(conn, state, render) {
  return conn
    .on(EVENT.PARTICIPANT_JOINED, (p) => {
      state.participants.set(p.id, p);
      render();
    })
    .on(EVENT.PARTICIPANT_LEFT, (p) => {
      state.participants.delete(p.id);
      render();
    })
    .on(EVENT.WHISPER_STATE, (data) => {
      state.whispering = data.whispering || [];
      render();
    })
    .on(EVENT.RECORDING_STATE, (data) => {
      state.recording = data.state;
      state.recordingInfo = data;
      state.recordingReason = data.reason || "";
      render();
    })
    .on(EVENT.SERVER_DRAINING, (data) => {
      state.draining = true;
      conn.detail = data?.message || "The server is restarting.";
      render();
    });
}

/**
 * The page's data from the server (token, role, session...): the template's
 * #sidecoach-page JSON, of the type the caller declares (JoinPage, ReviewPage...).
 * @template {object} T
 * @returns {T}
 */
export function readPage() {
  const el = document.getElementById("sidecoach-page");
  return el ? JSON.parse(el.textContent ?? "") : /** @type {T} */ ({});
}
