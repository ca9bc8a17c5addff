// One state machine per lesson page (teacher, coach, observer, debrief):
// the page's phase follows from what it knows (the connection, whether
// media flows, whether the classroom is live, the recording), and every
// label reads from the phase, so no label outlives its state.
//
//   connecting  not joined yet, rejoining, or media expected and not flowing
//               ("Connecting…", and after 10 s the reason: media_health.js)
//   ready       joined, the classroom not live yet
//   live        the classroom's media flows
//   paused      live, the recording paused
//   stopped     the classroom was live and stopped (nothing is recorded)
//   ended       the lesson is over: only its summary and review link remain
//   failed      this page can't join (a bad or replaced invite…)

import { $$, $maybe, RECORDING_WORDS } from "./ui.js";

/** @import { ConnState, Connection } from "./conn.js" */
/** @import { MediaState } from "./media_health.js" */
/** @import { RecordingInfo } from "../../types/wire" */

/** @typedef {"connecting" | "ready" | "live" | "paused" | "stopped" | "ended" | "failed"} Phase */

/**
 * What a page knows, from which its phase follows.
 * @typedef {object} Facts
 * @property {ConnState} conn the signaling connection
 * @property {MediaState} media whether this page's media flows (media_health.js)
 * @property {boolean} needsMedia the phase depends on it (a teacher live, a viewer shown the classroom)
 * @property {boolean} starting the page waits for its own media to start (a teacher going live)
 * @property {boolean} live the classroom's media flows (sent by the teacher, received by a viewer)
 * @property {boolean} everLive it did at some point on this page
 * @property {string} recording the server's recording state
 */

/**
 * The page's one phase.
 * @param {Facts} f
 * @returns {Phase}
 */
export function phaseOf(f) {
  if (f.conn === "ended") return "ended";
  if (f.conn === "failed" || f.conn === "closed") return "failed";
  if (f.conn !== "joined" || (f.needsMedia && f.media !== "connected") || f.starting) return "connecting";
  if (f.live) return f.recording === "paused" ? "paused" : "live";
  return f.everLive ? "stopped" : "ready";
}

/** The status bar's words for each phase; @type {Record<Phase, string>} */
export const STATUS_WORDS = {
  connecting: "Connecting…",
  ready: "Connected",
  live: "Connected",
  paused: "Connected",
  stopped: "Connected",
  ended: "Lesson ended",
  failed: "Can't join",
};

/**
 * The status bar (and the line under it) for `phase`: "Connecting…", and
 * after 10 s of media that does not flow, the reason.
 * @param {Connection} conn
 * @param {Phase} phase
 */
export function renderStatus(conn, phase) {
  // joined, yet this page's own media (a whisper…) not flowing: say so too
  const over = phase === "ended" || phase === "failed";
  const connecting = phase === "connecting" || (!over && conn.health.state === "connecting");
  const el = $maybe("#conn-state");
  if (el) {
    const rejoining = conn.state === "reconnecting";
    el.textContent = connecting ? (rejoining ? "Reconnecting…" : STATUS_WORDS.connecting) : STATUS_WORDS[phase];
    el.dataset.state = connecting ? (rejoining ? "reconnecting" : "connecting") : phase;
    el.title = conn.detail || "";
  }
  const detail = $maybe("#conn-detail");
  if (detail) {
    let words = "";
    if (connecting) words = conn.health.reason || (conn.state === "joined" ? "" : conn.detail);
    detail.textContent = words || "";
    detail.dataset.reason = conn.health.reason ? "media" : "";
  }
  const q = $maybe("#conn-quality");
  if (q) {
    const show = ["live", "paused", "ready", "stopped"].includes(phase) && conn.quality !== "unknown";
    q.dataset.quality = conn.quality;
    q.textContent = show ? `Connection: ${conn.quality}` : "";
  }
  document.body.dataset.conn = conn.state;
  document.body.dataset.phase = phase;
}

/**
 * The recording pill's words in `phase`: the server's state while media
 * flows; what will happen before; "Recording stopped" once the classroom
 * stopped (nothing is recorded then); nothing once the lesson is over.
 * @param {Phase} phase
 * @param {Partial<RecordingInfo> | {state: string} | null} rec
 * @param {string} whoGoesLive "you go", "the teacher goes"…
 * @param {boolean} sender this page sends what is recorded (the teacher's, a debrief member's)
 * @param {boolean} coming a viewer: the classroom is on its way (its picture not shown yet)
 * @returns {{shown: string, words: string} | null} null: no pill
 */
export function recordingWords(phase, rec, whoGoesLive, sender, coming) {
  const state = rec?.state || "unknown";
  const planned = Boolean(rec && "planned" in rec && rec.planned);
  const recording = state === "recording" || state === "paused";
  if (phase === "ended" || phase === "failed" || state === "ended") return null;
  if (state === "error") return { shown: "error", words: RECORDING_WORDS.error };
  if (phase === "paused") return { shown: "paused", words: RECORDING_WORDS.paused };
  if (phase === "live") {
    if (recording) return { shown: state, words: RECORDING_WORDS[state] };
    return planned ? { shown: "planned", words: "Will be recorded in a moment" } : { shown: "off", words: RECORDING_WORDS.off };
  }
  if (phase === "stopped") {
    return recording ? { shown: "stopped", words: "Recording stopped" } : { shown: "off", words: RECORDING_WORDS.off };
  }
  if (phase === "connecting" && (recording || planned)) {
    return { shown: "planned", words: "Will be recorded once connected" };
  }
  if (state === "unknown") return null; // not known before the join: no pill
  // ready: a viewer whose picture is on its way believes the server; the
  // teacher's own page is not live, so nothing of it is being recorded
  if (recording && !sender && coming) return { shown: state, words: RECORDING_WORDS[state] };
  if (recording && sender) return { shown: "stopped", words: "Recording stopped" };
  return planned
    ? { shown: "planned", words: `Will be recorded when ${whoGoesLive} live` }
    : { shown: "off", words: RECORDING_WORDS.off };
}

/**
 * Show the recording on every `.recording-state` pill of the page.
 * @param {Phase} phase
 * @param {Partial<RecordingInfo> | {state: string} | null} rec
 * @param {{who?: string, sender?: boolean, coming?: boolean}} [opts] who goes live; does this
 *   page send the media; (a viewer) is the classroom's picture on its way
 */
export function renderRecordingPill(phase, rec, { who = "the teacher goes", sender = false, coming = false } = {}) {
  const words = recordingWords(phase, rec, who, sender, coming);
  for (const el of $$(".recording-state")) {
    el.hidden = words == null;
    el.dataset.state = words?.shown || "ended";
    el.textContent = words?.words || "";
    el.title = (rec && "reason" in rec && rec.reason) || "";
  }
}
