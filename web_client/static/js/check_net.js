// The pre-lesson check's network half: a socket.io connection to the server
// (signaling), then test connections, each a real RTCPeerConnection to a
// server peer that receives one track (server/live/check.py): one per way
// to the server (UDP direct; each TURN URL alone, relay only) and one as a
// lesson's page would connect (every server at once), which also measures
// the upload a lesson needs. Everything here reports facts; check.js turns
// them into green, amber and red.

import { io } from "/vendor/socket.io.esm.min.js";
import { ERROR, EVENT, REQUEST, TRANSPORT } from "./protocol.js";

/** @import { Socket } from "/vendor/socket.io.esm.min.js" */
/** @import { CheckPath, CheckStart, CheckStats, ClientToServer, Offer, RequestMessage, RequestName, RequestReply, ServerToClient } from "../../types/wire" */

/** A test connection is given this long to connect (ICE and DTLS). */
export const PROBE_TIMEOUT_MS = 10000;
/** Non-trickle ICE: the answer waits for gathering, at most this long. */
const GATHER_TIMEOUT_MS = 5000;
/** How long the upload is measured once the lesson's test connection is up. */
export const UPLOAD_MS = 5000;
/** The server is given this long to say media arrived on a connected path. */
const MEDIA_WAIT_MS = 3000;
const CALL_TIMEOUT_MS = 8000;
const CONNECT_TIMEOUT_MS = 6000;

/**
 * What one test connection found.
 * @typedef {object} ProbeResult
 * @property {string} id the path's id ("direct", "turn-udp", …, or "lesson")
 * @property {boolean} connected ICE and DTLS completed
 * @property {boolean} media the server received this page's packets on it
 * @property {boolean} iceConnected ICE found a path (even if DTLS then failed)
 * @property {number} candidates local candidates gathered (relay ones, for a relay path)
 * @property {{code: number, text: string, url: string}[]} errors the ICE candidate errors (TURN refusals…)
 * @property {string | null} local the selected pair's local candidate type (host, srflx, relay)
 * @property {string | null} relayProtocol udp, tcp or tls for a relay candidate
 * @property {number | null} rttMs the selected pair's round trip
 * @property {number | null} uploadKbps what the server received (the lesson's connection)
 * @property {number | null} estimateKbps the browser's estimate of the upload (availableOutgoingBitrate)
 * @property {number} ms how long it took to decide
 * @property {string} failure why it did not connect ("" when it did)
 */

/** The signaling socket of one check, and what it learned. */
export class CheckLink {
  constructor() {
    /** @type {Socket<ServerToClient, ClientToServer> | null} */
    this.socket = null;
    /** probeId -> resolve(offer) @type {Map<string, (offer: Offer & {probeId: string}) => void>} */
    this._waiting = new Map();
    /** offers that came before their probe's reply @type {Map<string, Offer & {probeId: string}>} */
    this._early = new Map();
    /** @type {RTCPeerConnection[]} */
    this.pcs = [];
    this.closed = false;
  }

  /**
   * Connect and start a check: the transport used and the round trip of
   * check-start, or why it failed.
   * @returns {Promise<{ok: true, start: CheckStart, transport: string, ms: number} | {ok: false, why: string}>}
   */
  async open() {
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
    socket.on(EVENT.CHECK_OFFER, (offer) => {
      const resolve = this._waiting.get(offer.probeId);
      if (resolve) resolve(offer);
      else this._early.set(offer.probeId, offer);
    });
    const up = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve("The server did not answer."), CONNECT_TIMEOUT_MS + 1000);
      socket.on(TRANSPORT.CONNECT, () => {
        clearTimeout(timer);
        resolve("");
      });
      socket.on(TRANSPORT.CONNECT_ERROR, (err) => {
        clearTimeout(timer);
        resolve(err?.message || "The connection was refused.");
      });
    });
    if (up) return { ok: false, why: up };
    const t0 = performance.now();
    const reply = await this.call(REQUEST.CHECK_START, {});
    const ms = performance.now() - t0;
    if (!reply.ok) return { ok: false, why: reply.error.message };
    return { ok: true, start: reply, transport: socket.io.engine?.transport?.name || "websocket", ms };
  }

  /**
   * @template {RequestName} K
   * @param {K} event
   * @param {RequestMessage<K>} data
   * @returns {Promise<RequestReply<K>>}
   */
  async call(event, data) {
    const socket = this.socket;
    if (!socket || !socket.connected) {
      return /** @type {RequestReply<K>} */ ({ ok: false, error: { code: ERROR.OFFLINE, message: "Not connected" } });
    }
    const emitter = /** @type {{emitWithAck(event: K, data: RequestMessage<K>): Promise<RequestReply<K>>}} */ (
      /** @type {unknown} */ (socket.timeout(CALL_TIMEOUT_MS))
    );
    try {
      return await emitter.emitWithAck(event, data);
    } catch {
      return /** @type {RequestReply<K>} */ ({ ok: false, error: { code: ERROR.TIMEOUT, message: "No answer" } });
    }
  }

  /**
   * The server's offer for a probe (it may have come already).
   * @param {string} probeId
   * @returns {Promise<(Offer & {probeId: string}) | null>}
   */
  offerFor(probeId) {
    const early = this._early.get(probeId);
    if (early) return Promise.resolve(early);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), CALL_TIMEOUT_MS);
      this._waiting.set(probeId, (offer) => {
        clearTimeout(timer);
        resolve(offer);
      });
    });
  }

  /**
   * One test connection over `ice`, sending `track` (as `source`).
   * @param {string} id
   * @param {RTCConfiguration} ice
   * @param {"camera" | "screen" | "mic"} source
   * @param {MediaStreamTrack} track
   * @param {{measureUpload?: boolean, onConnected?: () => void}} [opts]
   * @returns {Promise<ProbeResult>}
   */
  async probe(id, ice, source, track, { measureUpload = false, onConnected } = {}) {
    const started = performance.now();
    /** @type {ProbeResult} */
    const result = {
      id, connected: false, media: false, iceConnected: false, candidates: 0, errors: [],
      local: null, relayProtocol: null, rttMs: null, uploadKbps: null, estimateKbps: null, ms: 0, failure: "",
    };
    const pc = new RTCPeerConnection({ ...ice, bundlePolicy: "max-bundle" });
    this.pcs.push(pc);
    pc.addEventListener("icecandidateerror", (e) => {
      const ev = /** @type {RTCPeerConnectionIceErrorEvent} */ (e);
      result.errors.push({ code: ev.errorCode, text: ev.errorText, url: ev.url });
    });
    const finish = (/** @type {string} */ failure) => {
      result.failure = failure;
      result.ms = performance.now() - started;
      return result;
    };
    const reply = await this.call(REQUEST.CHECK_PROBE, { source });
    if (!reply.ok) return finish(`The server refused a test connection: ${reply.error.message}`);
    const offer = await this.offerFor(reply.probeId);
    if (!offer || this.closed) return finish("The server sent no offer.");
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    for (const t of pc.getTransceivers()) {
      if (t.mid != null && offer.publish[t.mid]) {
        await t.sender.replaceTrack(track);
        t.direction = "sendonly";
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    const sdp = pc.localDescription?.sdp ?? "";
    const wanted = ice.iceTransportPolicy === "relay" ? / typ relay/ : / typ /;
    result.candidates = sdp.split("\n").filter((l) => l.startsWith("a=candidate") && wanted.test(l)).length;
    const answered = await this.call(REQUEST.CHECK_ANSWER, {
      probeId: reply.probeId, negotiationId: offer.negotiationId, sdp,
    });
    if (!answered.ok) return finish(`The server refused the answer: ${answered.error.message}`);
    if (!result.candidates) return finish("no candidates");
    const state = await connected(pc, result);
    if (state !== "connected") return finish(state);
    result.connected = true;
    onConnected?.();
    await selectedPair(pc, result);
    result.media = await this.mediaArrived(reply.probeId);
    if (measureUpload) await this.measureUpload(pc, reply.probeId, result);
    return finish("");
  }

  /**
   * Has the server received packets on this probe (within MEDIA_WAIT_MS)?
   * @param {string} probeId
   */
  async mediaArrived(probeId) {
    const until = performance.now() + MEDIA_WAIT_MS;
    while (performance.now() < until && !this.closed) {
      const s = await this.call(REQUEST.CHECK_STATS, { probeId });
      if (s.ok && s.packets > 0) return true;
      await sleep(200);
    }
    return false;
  }

  /**
   * What the server receives over UPLOAD_MS, and the browser's estimate.
   * @param {RTCPeerConnection} pc
   * @param {string} probeId
   * @param {ProbeResult} result
   */
  async measureUpload(pc, probeId, result) {
    /** @type {CheckStats | null} */
    let first = null;
    const t0 = performance.now();
    while (performance.now() - t0 < UPLOAD_MS && !this.closed) {
      const s = await this.call(REQUEST.CHECK_STATS, { probeId });
      if (s.ok) {
        if (!first || first.receivingMs === 0) first = s;
        else if (s.receivingMs > first.receivingMs) {
          result.uploadKbps = ((s.bytes - first.bytes) * 8) / (s.receivingMs - first.receivingMs);
        }
      }
      const estimate = await outgoingEstimate(pc);
      if (estimate != null) result.estimateKbps = Math.max(result.estimateKbps ?? 0, estimate);
      await sleep(500);
    }
  }

  /** End the check: its test connections and the socket. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const pc of this.pcs) pc.close();
    const socket = this.socket;
    if (socket?.connected) {
      await this.call(REQUEST.CHECK_STOP, {});
      socket.disconnect();
    }
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * Non-trickle: wait for ICE gathering (or GATHER_TIMEOUT_MS).
 * @param {RTCPeerConnection} pc
 * @returns {Promise<void>}
 */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Wait until ICE and DTLS complete, fail, or PROBE_TIMEOUT_MS passes.
 * @param {RTCPeerConnection} pc
 * @param {ProbeResult} result its iceConnected is set on the way
 * @returns {Promise<"connected" | "dtls failed" | "no route" | "timeout">}
 */
function connected(pc, result) {
  return new Promise((resolve) => {
    const look = () => {
      if (["connected", "completed"].includes(pc.iceConnectionState)) result.iceConnected = true;
      if (pc.connectionState === "connected") finish("connected");
      else if (pc.connectionState === "failed") finish(result.iceConnected ? "dtls failed" : "no route");
    };
    const finish = (/** @type {"connected" | "dtls failed" | "no route" | "timeout"} */ how) => {
      clearTimeout(timer);
      pc.removeEventListener("connectionstatechange", look);
      pc.removeEventListener("iceconnectionstatechange", look);
      resolve(how);
    };
    const timer = setTimeout(() => finish(result.iceConnected ? "dtls failed" : "timeout"), PROBE_TIMEOUT_MS);
    pc.addEventListener("connectionstatechange", look);
    pc.addEventListener("iceconnectionstatechange", look);
    look();
  });
}

/**
 * The selected candidate pair: its local candidate's type, relay protocol, round trip.
 * @param {RTCPeerConnection} pc
 * @param {ProbeResult} result
 */
async function selectedPair(pc, result) {
  for (let i = 0; i < 20; i += 1) { // bounded: stats have the pair once checks succeed
    const stats = await pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (pair && pair.state === "succeeded") {
      const local = stats.get(pair.localCandidateId);
      result.local = local?.candidateType ?? null;
      result.relayProtocol = local?.relayProtocol ?? null;
      const rtt = pair.currentRoundTripTime ?? (pair.responsesReceived ? pair.totalRoundTripTime / pair.responsesReceived : null);
      result.rttMs = rtt != null ? rtt * 1000 : null;
      return;
    }
    await sleep(100);
  }
}

/**
 * The browser's estimate of the upload (kbit/s), from the selected pair.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<number | null>}
 */
async function outgoingEstimate(pc) {
  const stats = await pc.getStats();
  /** @type {number | null} */
  let kbps = null;
  stats.forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate) {
      kbps = s.availableOutgoingBitrate / 1000;
    }
  });
  return kbps;
}

/**
 * How a connected probe's media went: "direct", "turn-udp", "turn-tcp" or "turn-tls".
 * @param {ProbeResult} r
 * @returns {CheckPath["transport"] | null}
 */
export function transportOf(r) {
  if (!r.connected) return null;
  if (r.local !== "relay") return "direct";
  return r.relayProtocol === "tls" ? "turn-tls" : r.relayProtocol === "tcp" ? "turn-tcp" : "turn-udp";
}
