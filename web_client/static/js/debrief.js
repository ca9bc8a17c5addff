// A debrief room: members see and hear each other and watch one recording
// together. One driver plays, pauses, seeks and sets the speed; every
// player follows the room's playback state on the server's clock (learned
// NTP-style over socket.io): small drift is corrected by nudging
// playbackRate, large drift by a seek, and when anyone buffers the group
// waits. Comments land on everyone's timeline at once.

import { Connection, followRoom, readPage } from "./conn.js";
import { RemoteMedia } from "./media.js";
import { ReviewPlayer } from "./player.js";
import { CommentPanel } from "./comment_panel.js";
import { Review } from "./review_core.js";
import { EVENT, REQUEST } from "./protocol.js";
import { phaseOf, renderRecordingPill, renderStatus } from "./lesson_state.js";
import { $, copy, describeError, errorText, exposeHooks, renderPresence, toast } from "./ui.js";

/** @import { JoinPage, Participant, PlaybackState, RecordingInfo, RequestMessage, Whisperer } from "../../types/wire" */
/** @import { Intent } from "./player.js" */
/** @import { Phase } from "./lesson_state.js" */

/** @type {JoinPage} */
const page = readPage();
const review = new Review(page.recordingId ?? "", page.token);
const NAME_KEY = "sidecoach.debriefName";

/** Above this drift (s) a player seeks; above DRIFT_NUDGE_S it nudges its rate. */
const DRIFT_SEEK_S = 0.5;
const DRIFT_NUDGE_S = 0.02;
/** How hard a nudge pulls: rate * (1 - drift * NUDGE_GAIN), within +/-NUDGE_MAX. */
const NUDGE_GAIN = 1.2;
const NUDGE_MAX = 0.12;
const FOLLOW_MS = 100;
/** "naive": apply each state once, no continuous correction (the benchmark's baseline) */
const SYNC_MODE = /** @type {{SIDECOACH_SYNC?: string}} */ (globalThis).SIDECOACH_SYNC === "naive" ? "naive" : "follow";
const SYNC_SAMPLES = 7;
const RESYNC_MS = 5000;

const state = {
  /** the member clicked Join (the room's connection started) */
  started: false,
  /** media flowed in this room at some point */
  everLive: false,
  joined: false,
  /** @type {Map<string, Participant>} */
  participants: new Map(),
  /** @type {Whisperer[]} */
  whispering: [],
  /** @type {string | null} */
  selfId: null,
  /** the room's playback, the latest seen @type {PlaybackState | null} */
  playback: null,
  owner: false,
  recording: "unknown",
  /** @type {RecordingInfo | null} */
  recordingInfo: null,
  buffering: false,
  lastDrift: 0,
  seeks: 0,
  /** @type {MediaStream | null} */
  stream: null,
  /** @type {ReviewPlayer | null} */
  player: null,
  /** @type {CommentPanel | null} */
  comments: null,
};

// -- the shared clock ------------------------------------------------------------------------

const clockSync = {
  /** @type {{rtt: number, offset: number}[]} */
  samples: [],
  offset: 0,
  async sample() {
    const t0 = performance.now();
    const reply = await conn.call(REQUEST.TIME_SYNC, {});
    const t1 = performance.now();
    if (!reply.ok) return;
    const rtt = t1 - t0;
    this.samples.push({ rtt, offset: reply.serverMs - (t0 + rtt / 2) });
    this.samples = this.samples.slice(-16);
    // the sample with the shortest round trip has the least uncertainty
    this.offset = this.samples.reduce((best, s) => (s.rtt < best.rtt ? s : best)).offset;
  },
  async burst() {
    for (let i = 0; i < SYNC_SAMPLES; i += 1) await this.sample();
  },
  now() {
    return performance.now() + this.offset;
  },
  /** @returns {number | null} the shortest round trip (ms) */
  get rtt() {
    return this.samples.length ? Math.min(...this.samples.map((s) => s.rtt)) : null;
  },
};

// -- following the room -------------------------------------------------------------------------

/** Where the room's playback is now (s of the review video), or null before any. */
function target() {
  const pb = state.playback;
  if (!pb) return null;
  return pb.moving ? pb.position + ((clockSync.now() - pb.at) / 1000) * pb.rate : pb.position;
}

function follow() {
  const v = state.player?.video;
  const pb = state.playback;
  if (!v || !pb || v.readyState < 1) return;
  const want = /** @type {number} */ (target()); // pb is set
  const drift = v.currentTime - want;
  state.lastDrift = drift;
  if (!pb.moving) {
    if (!v.paused) v.pause();
    v.playbackRate = pb.rate;
    if (Math.abs(drift) > 0.04) v.currentTime = want;
    return;
  }
  if (Math.abs(drift) > DRIFT_SEEK_S) {
    state.seeks += 1;
    // a seek takes a moment: land where the room will be when it is done
    seekTo(v, want + (seekLag.ms / 1000) * pb.rate);
    v.playbackRate = pb.rate;
  } else if (Math.abs(drift) > DRIFT_NUDGE_S) {
    const nudge = Math.max(-NUDGE_MAX, Math.min(NUDGE_MAX, drift * NUDGE_GAIN));
    v.playbackRate = pb.rate * (1 - nudge);
  } else {
    v.playbackRate = pb.rate;
  }
  if (v.paused) v.play().catch(() => {});
}

/** How long this player's seeks take (ms, smoothed), to aim them ahead. */
/** @type {{ms: number, started: number | null}} */
const seekLag = { ms: 80, started: null };

/**
 * @param {HTMLMediaElement} v
 * @param {number} seconds
 */
function seekTo(v, seconds) {
  seekLag.started = performance.now();
  v.currentTime = seconds;
}

function onSeeked() {
  if (seekLag.started == null) return;
  const took = performance.now() - seekLag.started;
  seekLag.started = null;
  if (took < 2000) seekLag.ms = 0.7 * seekLag.ms + 0.3 * took;
}

/** @param {PlaybackState} pb */
function onPlayback(pb) {
  if (state.playback && pb.seq < state.playback.seq) return; // an older state
  const prev = state.playback;
  const commanded = !prev || pb.command !== prev.command;
  state.playback = pb;
  if (state.player) state.player.displayRate = pb.rate;
  if (SYNC_MODE === "follow") follow();
  else applyOnce(commanded);
  render();
}

/** The naive way (the benchmark's baseline): apply a command once, then let
 * the player run; a hold (someone buffering) only pauses and resumes.
 * @param {boolean} commanded a new command (not only a hold or a release)
 */
function applyOnce(commanded) {
  const v = state.player?.video;
  const pb = state.playback;
  if (!v || !pb) return;
  if (commanded) {
    v.currentTime = /** @type {number} */ (target()); // pb is set
    v.playbackRate = pb.rate;
  }
  if (pb.moving && v.paused) v.play().catch(() => {});
  if (!pb.moving && !v.paused) v.pause();
}

/**
 * The user asked the player for something: ask the room (if this page drives).
 * @param {Intent} intent
 */
async function onIntent({ action, ms, rate }) {
  if (state.playback?.driver && state.playback.driver !== state.selfId) {
    toast("Only the driver controls the playback. Click “Drive the playback” to take over.");
    $("#take-wheel").focus();
    return;
  }
  const v = /** @type {ReviewPlayer} */ (state.player).video; // intents come from the player
  /** @type {RequestMessage<"playback">} */
  const msg = { action };
  msg.position = action === "seek" ? review.mediaTime(ms ?? 0) : v.currentTime;
  if (action === "rate") msg.rate = rate ?? undefined;
  const reply = await conn.call(REQUEST.PLAYBACK, msg);
  if (reply.ok) onPlayback(reply.playback);
  else toast(`Playback: ${describeError(reply.error)}`, "error");
}

/** @param {boolean} buffering */
async function reportBuffering(buffering) {
  if (buffering === state.buffering || !state.joined) return;
  state.buffering = buffering;
  const reply = await conn.call(REQUEST.PLAYBACK_BUFFERING, { buffering });
  if (reply.ok) onPlayback(reply.playback);
}

// -- the room ---------------------------------------------------------------------------------------

const conn = new Connection({ token: page.token, sessionId: page.sessionId });
const media = new RemoteMedia($("#members"), $("#member-audio"), {
  labelFor: (info) => state.participants.get(info.participantId)?.name || "member",
});

/** The room's one phase (lesson_state.js): every label below reads it. @returns {Phase} */
function phase() {
  if (!state.started) return "ready"; // the join form: nothing to connect yet
  const flowing = conn.state === "joined" && (!state.stream || conn.health.state === "connected");
  if (flowing) state.everLive = true;
  return phaseOf({
    conn: conn.state,
    media: conn.health.state,
    needsMedia: Boolean(state.stream),
    starting: false,
    live: flowing,
    everLive: state.everLive,
    recording: state.recording,
  });
}

function render() {
  const p = phase();
  renderStatus(conn, p);
  const pb = state.playback;
  const driverName = pb?.driver ? (pb.driver === state.selfId ? "You are driving." : `${pb.driverName} is driving.`) : "Nobody is driving yet.";
  $("#driver").textContent = driverName;
  $("#waiting").textContent = pb?.waitingFor?.length ? `Waiting for ${pb.waitingFor.join(", ")} to catch up…` : "";
  $("#take-wheel").hidden = pb?.driver === state.selfId;
  renderPresence($("#people"), [...state.participants.values()], [], state.selfId);
  $("#owner-panel").hidden = !state.owner;
  if (state.owner) {
    renderRecordingPill(p, state.recordingInfo || { state: state.recording }, { who: "the room goes", sender: true });
    const planned = Boolean(state.recordingInfo?.planned);
    $("#plan-toggle").textContent = planned ? "Don't record this debrief" : "Record this debrief";
  }
  if (p === "ended" || p === "failed") {
    const banner = $("#ended-banner");
    banner.hidden = false;
    banner.textContent = p === "ended" ? "This debrief has ended. Thank you!" : `Can't join: ${conn.detail}`;
    // only the way back to the recording remains
    for (const sel of ["#room", "#side", "#lobby"]) $(sel).hidden = true;
    const back = $("#after-debrief");
    back.hidden = false;
  }
}

conn.onstate = () => render();
/** the join after which "Reconnected." was said (once media flows again) */
let toldReconnected = 1;
conn.onmedia = () => {
  if (conn.joins > toldReconnected && conn.health.state === "connected") {
    toldReconnected = conn.joins;
    toast("Reconnected.");
  }
  render();
};
conn.onjoined = async (reply) => {
  state.joined = true;
  state.selfId = reply.participantId;
  state.owner = Boolean(reply.permissions?.decideRecording);
  state.participants = new Map(reply.participants.map((p) => [p.id, p]));
  state.participants.set(reply.participantId, { id: reply.participantId, role: reply.role, name: reply.name });
  state.recordingInfo = reply.recording || null;
  state.recording = reply.recording?.state || "unknown";
  if (reply.debrief?.playback) onPlayback(reply.debrief.playback);
  await clockSync.burst();
  render();
};
conn.ontrack = (remote) => {
  media.add(remote);
  render();
};
conn.ontrackremoved = (remote) => media.remove(remote);
followRoom(conn, state, render)
  .on(EVENT.PLAYBACK_STATE, (pb) => onPlayback(pb))
  .on(EVENT.COMMENT, (c) => state.comments?.added(c));

async function join() {
  const name = $("#my-name", HTMLInputElement).value.trim();
  if (name) localStorage.setItem(NAME_KEY, name);
  conn.name = name || undefined;
  $("#join", HTMLButtonElement).disabled = true;
  state.started = true;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (err) {
    const why = err instanceof Error ? err.name : String(err);
    toast(`No camera or microphone (${why}): you can still watch and talk in comments.`, "error");
  }
  $("#lobby").hidden = true;
  $("#room").hidden = false;
  $("#side").hidden = false;
  const player = new ReviewPlayer(review, { controlled: true, onIntent });
  state.player = player;
  player.mount();
  const v = player.video;
  v.addEventListener("seeked", onSeeked);
  v.addEventListener("waiting", () => reportBuffering(true));
  for (const ev of ["playing", "canplay", "seeked"]) {
    v.addEventListener(ev, () => {
      if (v.readyState >= 3) reportBuffering(false);
    });
  }
  const comments = new CommentPanel(review, {
    nowMs: () => player.nowMs(),
    onSeek: (ms) => onIntent({ action: "seek", ms, rate: null }),
    onChange: () => player.redrawTimeline(),
  });
  state.comments = comments;
  comments.mount({ canComment: true });
  player.onTime = () => comments.showTime();
  conn.start();
  for (const track of state.stream?.getTracks() || []) {
    const kind = track.kind === "video" ? "video" : "audio";
    await conn.publish(kind === "video" ? "camera" : "mic", kind, track);
  }
  if (SYNC_MODE === "follow") setInterval(follow, FOLLOW_MS);
  // a player held still (the room waits) fires no "playing": look for itself
  setInterval(() => {
    if (state.buffering && v.readyState >= 3) reportBuffering(false);
  }, FOLLOW_MS);
  setInterval(() => clockSync.sample(), RESYNC_MS);
}

async function main() {
  const myName = $("#my-name", HTMLInputElement);
  myName.value = myName.value || localStorage.getItem(NAME_KEY) || "";
  try {
    await review.load();
  } catch (err) {
    $("#join-error").textContent = `This recording can't be opened: ${errorText(err)}`;
    $("#join", HTMLButtonElement).disabled = true;
    return;
  }
  $("#join").addEventListener("click", join);
  $("#take-wheel").addEventListener("click", async () => {
    const reply = await conn.call(REQUEST.PLAYBACK_DRIVE, {});
    if (reply.ok) onPlayback(reply.playback);
  });
  $("#plan-toggle").addEventListener("click", async () => {
    const reply = await conn.call(REQUEST.RECORDING_PLAN, { record: !state.recordingInfo?.planned });
    if (reply.ok) {
      state.recordingInfo = reply.recording;
      state.recording = reply.recording.state;
      render();
    }
  });
  $("#end-debrief").addEventListener("click", async () => {
    if (confirm("End the debrief for everyone?")) await conn.call(REQUEST.END_SESSION, {});
  });
  render();
}

exposeHooks({
  role: () => "member",
  state: () => conn.state,
  socket: () => conn.socket,
  joined: () => state.joined,
  participantId: () => state.selfId,
  participants: () => copy([...state.participants.values()]),
  playback: () => copy(state.playback),
  driver: () => state.playback?.driver ?? null,
  currentTime: () => state.player?.video.currentTime ?? null,
  paused: () => state.player?.video.paused ?? null,
  playbackRate: () => state.player?.video.playbackRate ?? null,
  /** this player's distance from where the room is now (s; + ahead) */
  drift: () => {
    const v = state.player?.video;
    const want = target();
    return v && want != null ? v.currentTime - want : null;
  },
  clockRtt: () => clockSync.rtt,
  seeks: () => state.seeks,
  seekLagMs: () => seekLag.ms,
  syncMode: () => SYNC_MODE,
  comments: () => copy(review.comments),
  remoteTracks: () => [...conn.remote.values()].map((r) => ({ mid: r.mid, ...copy(r.info) })),
  serverNow: () => clockSync.now(),
});

main();
