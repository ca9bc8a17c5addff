// Can media flow? A page's Connection asks this of every RTCPeerConnection
// it makes (one per join): while media is expected (an offer was answered)
// and the connection is not up, the page says "Connecting…", and after
// REASON_AFTER_MS it names the reason from what the browser saw (ICE and
// DTLS states, TURN candidate errors) and what the server said (the
// `removed` reason). The trouble's start survives rejoins: a page that keeps
// rejoining over a dead path still names it after REASON_AFTER_MS.

/** @import { RemovedInfo } from "../../types/wire" */

/** "Connecting…" this long before the page names why. */
export const REASON_AFTER_MS = 10000;
/** While media does not flow, the candidate-pair stats are read this often. */
const STATS_EVERY_MS = 2000;

export const RELAY_REFUSED =
  "The school's relay refused our credentials: ask your admin to check SIDECOACH_TURN_SECRET.";
export const RELAY_UNREACHABLE =
  "The school's relay can't be reached from this network: ask your admin to check the relay's address and firewall.";
export const DTLS_FAILED =
  "A path to the server was found, but the encrypted media connection (DTLS) failed: a firewall may be inspecting the traffic; ask your network admin.";
export const RELAY_CANT_REACH =
  "The school's relay answers, but media can't get from it to the server: ask your admin whether the relay may reach the server's ICE addresses.";
export const NO_ROUTE =
  "No route for video and sound to the server from this network: open the pre-lesson check (Check my setup) to see which way is blocked.";

/** @typedef {"idle" | "connecting" | "connected"} MediaState */

export class MediaHealth {
  /**
   * @param {() => void} onchange called when the state or the reason changes
   */
  constructor(onchange) {
    this.onchange = onchange;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** media is expected on the current connection (an offer was answered) */
    this.expected = false;
    /** performance.now() since when media is expected and not flowing @type {number | null} */
    this.since = null;
    /** ICE found a path on the current connection */
    this.iceConnected = false;
    /** @type {{code: number, url: string}[]} TURN and STUN errors, since the trouble began */
    this.errors = [];
    /** the server's last `removed` of this participant @type {RemovedInfo | null} */
    this.removal = null;
    /** media has flowed at least once */
    this.everConnected = false;
    /** from the candidate-pair stats while in trouble: a relay candidate, a pair that worked */
    this.seen = { relay: false, succeeded: false };
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._stats = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._timer = undefined;
  }

  /**
   * A new peer connection (after a join): watch it.
   * @param {RTCPeerConnection} pc
   */
  watch(pc) {
    this.pc = pc;
    this.expected = false;
    this.iceConnected = false;
    this.seen = { relay: false, succeeded: false };
    pc.addEventListener("icecandidateerror", (e) => {
      const ev = /** @type {RTCPeerConnectionIceErrorEvent} */ (e);
      if (pc === this.pc) this.errors.push({ code: ev.errorCode, url: ev.url });
    });
    const look = () => {
      if (pc !== this.pc) return;
      if (["connected", "completed"].includes(pc.iceConnectionState)) this.iceConnected = true;
      if (pc.connectionState === "connected") {
        this.since = null;
        this.errors = [];
        this.removal = null;
        this.everConnected = true;
      } else if (this.expected && this.since == null && ["disconnected", "failed"].includes(pc.connectionState)) {
        this.since = performance.now(); // it was up, and is not any more
      }
      this._changed();
    };
    pc.addEventListener("connectionstatechange", look);
    pc.addEventListener("iceconnectionstatechange", look);
  }

  /** An offer was answered on the current connection: media should flow now. */
  negotiated() {
    this.expected = true;
    if (this.pc?.connectionState !== "connected" && this.since == null) this.since = performance.now();
    this._changed();
  }

  /**
   * The server removed this participant (its media failed): keep why.
   * @param {RemovedInfo} info
   */
  removed(info) {
    this.removal = info;
    this._changed();
  }

  /** The page left (or the lesson ended): nothing is expected any more. */
  stop() {
    this.pc = null;
    this.expected = false;
    this.since = null;
    clearTimeout(this._timer);
    clearInterval(this._stats);
    this._stats = undefined;
  }

  /** While in trouble: which candidates the connection has, and whether a pair worked. */
  async _look() {
    const pc = this.pc;
    if (!pc || this.since == null) return;
    try {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "local-candidate" && s.candidateType === "relay") this.seen.relay = true;
        if (s.type === "candidate-pair" && s.state === "succeeded") this.seen.succeeded = true;
      });
    } catch {
      /* the connection closed meanwhile */
    }
  }

  /** @returns {MediaState} */
  get state() {
    if (this.pc?.connectionState === "connected") return "connected";
    return this.since != null ? "connecting" : "idle";
  }

  /** How long media has been expected and not flowing (ms), or 0. */
  get troubleMs() {
    return this.since == null ? 0 : performance.now() - this.since;
  }

  /** Why media does not flow, once it has not for REASON_AFTER_MS; else null. */
  get reason() {
    if (this.state !== "connecting" || this.troubleMs < REASON_AFTER_MS) return null;
    return this.diagnose();
  }

  /** Why media does not flow, from what was seen so far (one sentence). */
  diagnose() {
    const cause = this.removal?.cause;
    if (cause === "relay_refused" || this.errors.some((e) => e.code === 401 || e.code === 403)) {
      return RELAY_REFUSED;
    }
    if (cause === "dtls_failed" || (this.iceConnected && this.pc?.connectionState !== "connected")) {
      return DTLS_FAILED;
    }
    if (cause === "relay_unreachable" || (this.errors.length && this.errors.every((e) => e.code === 701))) {
      return RELAY_UNREACHABLE;
    }
    if (cause === "no_route_via_relay" || (this.seen.relay && !this.seen.succeeded)) return RELAY_CANT_REACH;
    return this.removal?.reason || NO_ROUTE;
  }

  _changed() {
    clearTimeout(this._timer);
    if (this.since != null && this._stats == null) {
      this._stats = setInterval(() => this._look(), STATS_EVERY_MS);
    } else if (this.since == null && this._stats != null) {
      clearInterval(this._stats);
      this._stats = undefined;
    }
    if (this.since != null) {
      // say why once the trouble has lasted long enough
      const wait = REASON_AFTER_MS - this.troubleMs;
      if (wait > 0) this._timer = setTimeout(() => this.onchange(), wait + 50);
    }
    this.onchange();
  }
}
