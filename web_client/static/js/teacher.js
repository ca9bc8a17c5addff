// The teacher's page (the classroom device): camera + mic, one-tap Go live,
// always-visible live/recording state, whispers on a chosen output, cues.

import { showAfter } from "./after.js";
import { ScreenAwake } from "./awake.js";
import { ERROR, EVENT, REQUEST } from "./protocol.js";
import { Connection, followRoom, readPage } from "./conn.js";
import { fillSelect, listDevices, safePlay } from "./media.js";
import { phaseOf, renderRecordingPill, renderStatus } from "./lesson_state.js";
import { mediaProblem } from "./secure.js";
import {
  $,
  $maybe,
  clock,
  copy,
  describeError,
  errorText,
  exposeHooks,
  h,
  lengthWords,
  plural,
  renderPresence,
  toast,
} from "./ui.js";

/** @import { Cue, JoinPage, Participant, RecordingInfo, ServerToClient, Whisperer } from "../../types/wire" */
/** @import { Publication } from "./conn.js" */
/** @import { Phase } from "./lesson_state.js" */

/** @type {JoinPage} */
const page = readPage();
const conn = new Connection({ token: page.token, sessionId: page.sessionId });
const OUTPUT_KEY = "sidecoach.whisperOutput";

/**
 * A cue on the teacher's screen: shown (painted, so "delivered"), acked (tapped).
 * @typedef {{cue: Cue, shown: boolean, acked: boolean}} ShownCue
 */

const state = {
  wantLive: false,
  everLive: false,
  recording: "unknown",
  /** @type {RecordingInfo | null} */
  recordingInfo: null,
  recordingReason: "",
  afterShown: false,
  /** when the classroom last went live (performance.now()), and how long it was live before */
  /** @type {number | null} */
  liveSince: null,
  liveMs: 0,
  /** @type {Whisperer[]} */
  whispering: [],
  /** @type {Map<string, Participant>} */
  participants: new Map(),
  /** @type {string | null} */
  selfId: null,
  /** id -> the cue as shown @type {Map<string, ShownCue>} */
  cues: new Map(),
  /** @type {ShownCue | null} */
  lastCue: null,
  /** @type {MediaStream | null} */
  previewStream: null,
  /** @type {Publication | null} */
  cameraPub: null,
  /** @type {Publication | null} */
  micPub: null,
  /** @type {{pub: Publication, stream: MediaStream, tile: HTMLElement}[]} */
  extraCameras: [],
  /** mid -> <audio> of a whisper @type {Map<string, HTMLAudioElement>} */
  whisperAudio: new Map(),
  outputId: localStorage.getItem(OUTPUT_KEY) || "",
  /**
   * Why the classroom may not reach the coaches any more: the camera (or
   * mic) track ended (iOS ends a background tab's camera), or the page was
   * hidden while live. Null: nothing to say.
   * @type {"ended" | "hidden" | null}
   */
  deviceWarning: null,
  cameraRestarts: 0,
  tones: 0,
};
const awake = new ScreenAwake();

const sinkSupported = "setSinkId" in HTMLMediaElement.prototype;
/** no camera here (an insecure page, an old browser): Go live stays disabled */
const noMedia = mediaProblem();

// -- state display: one phase drives every label (lesson_state.js) ---------------

/** Is the classroom's media flowing (what coaches see)? Only once the server
 * said a track is published AND this page's connection carries media. */
function flowing() {
  const pubs = [state.cameraPub, state.micPub, ...state.extraCameras.map((c) => c.pub)];
  return conn.state === "joined" && conn.health.state === "connected" && pubs.some((p) => p && p.published);
}

/** @returns {Phase} */
function phase() {
  const live = state.wantLive && flowing();
  if (live) state.everLive = true;
  return phaseOf({
    conn: conn.state,
    media: conn.health.state,
    needsMedia: state.wantLive,
    starting: state.wantLive && !live,
    live,
    everLive: state.everLive,
    recording: state.recording,
  });
}

/** For tests and hooks: "live", "starting", "reconnecting" or "off". */
function liveState() {
  if (!state.wantLive) return "off";
  if (conn.state === "reconnecting" || conn.state === "connecting") return "reconnecting";
  if (conn.state !== "joined") return "off";
  return flowing() ? "live" : "starting";
}

/** The big label, by phase; @type {Record<Phase, string>} */
const LIVE_WORDS = {
  connecting: "Connecting…",
  ready: "Not live",
  live: "● LIVE",
  paused: "● LIVE",
  stopped: "Not live",
  ended: "Lesson ended",
  failed: "Can't join",
};

function render() {
  const p = phase();
  const over = p === "ended" || p === "failed";
  const now = performance.now();
  if ((p === "live" || p === "paused") && state.liveSince == null) state.liveSince = now;
  if (!(p === "live" || p === "paused") && state.liveSince != null) {
    state.liveMs += now - state.liveSince;
    state.liveSince = null;
  }
  renderStatus(conn, p);
  const el = $("#live-state");
  el.dataset.state = p;
  el.textContent = LIVE_WORDS[p];
  document.body.dataset.live = liveState();
  const info = state.recordingInfo || { state: state.recording };
  renderRecordingPill(p, info, { who: "you go", sender: true });
  renderPlan(info, p);
  const goLiveButton = $("#go-live", HTMLButtonElement);
  goLiveButton.hidden = state.wantLive || over;
  goLiveButton.textContent = state.everLive ? "Go live again" : "Go live";
  goLiveButton.disabled = Boolean(noMedia) || !(p === "ready" || p === "stopped");
  $("#stop").hidden = !state.wantLive || over;
  $("#end-lesson").hidden = p !== "stopped" || state.wantLive;
  const pause = $("#pause-recording", HTMLButtonElement);
  const recording = state.recording === "recording" || state.recording === "paused";
  pause.hidden = !(p === "live" || p === "paused") || !recording;
  pause.textContent = p === "paused" ? "Resume recording" : "Pause recording";
  pause.setAttribute("aria-pressed", String(p === "paused"));
  $("#add-camera", HTMLButtonElement).disabled =
    !(p === "live" || p === "paused") || !$("#camera2-select", HTMLSelectElement).value;
  const who = state.whispering.map((w) => w.name || "A coach");
  const wi = $("#whisper-indicator");
  wi.hidden = who.length === 0 || over;
  wi.textContent = who.length ? `● ${who.join(", ")} ${who.length > 1 ? "are" : "is"} whispering` : "";
  $("#cues").hidden = over;
  renderDeviceWarning(over);
  renderPresence(
    $("#people"),
    [...state.participants.values()],
    state.whispering,
    state.selfId,
  );
  for (const sel of [".setup", ".previews-section", "#people-heading", ".teacher-controls"]) {
    const section = $(sel).closest("section");
    if (section) section.hidden = over;
  }
  // the pre-lesson check takes the camera: not while the classroom is live
  $("#check-link").hidden = over || state.wantLive;
  if (over) {
    const banner = $("#ended-banner");
    banner.hidden = false;
    banner.textContent = p === "ended" ? "This lesson has ended. Thank you!" : `Can't join: ${conn.detail}`;
  }
  if (p === "ended" && !state.afterShown) {
    state.afterShown = true;
    $("#lesson-summary").hidden = false;
    $("#lesson-summary").textContent = summaryWords();
    showAfter($("#after"), { token: page.token, role: "teacher", retentionDays: retentionDays() });
  }
}

/** @type {Record<"ended" | "hidden", string>} */
const DEVICE_WARNING_WORDS = {
  ended: "Your camera stopped: coaches can't see the classroom. Tap Restart camera.",
  hidden: "This page was in the background: the device may have stopped your camera. If coaches say the picture froze, tap Restart camera.",
};

/** @param {boolean} over */
function renderDeviceWarning(over) {
  const warning = over || !state.wantLive ? null : state.deviceWarning;
  const el = $("#device-warning");
  el.hidden = !warning;
  el.dataset.reason = warning || "";
  $("#device-warning-text").textContent = warning ? DEVICE_WARNING_WORDS[warning] : "";
}

/** The lesson in a sentence, once it is over. */
function summaryWords() {
  const lasted = state.liveMs > 0 ? ` You were live for ${lengthWords(state.liveMs)}.` : "";
  const cues = state.cues.size;
  return `“${page.title}” is over.${lasted} ${cues ? plural(cues, "cue") : "No cues"} from your coach${cues === 1 ? "" : "es"}.`;
}

function retentionDays() {
  return state.recordingInfo?.retentionDays ?? page.retentionDays ?? 30;
}

/**
 * Before anything is recorded: will this lesson be recorded? The teacher decides.
 * @param {RecordingInfo | {state: string, planned?: undefined}} info
 * @param {Phase} p
 */
function renderPlan(info, p) {
  const panel = $("#recording-plan");
  const deciding = (p === "ready" || p === "stopped" || (p === "connecting" && state.wantLive)) && info.state === "off";
  panel.hidden = !deciding;
  // the panel says it in full: the pill would only repeat it
  if (deciding) $("#recording-state").hidden = true;
  $("#retention").textContent =
    `Recordings stay on your district's server, are kept for ${retentionDays()} days and then deleted automatically. You can delete yours sooner.`;
  if (!deciding) return;
  $("#plan-words").textContent = info.planned
    ? state.wantLive
      ? "This lesson is being recorded."
      : "This lesson will be recorded when you go live."
    : "This lesson will not be recorded.";
  const toggle = $("#plan-toggle");
  toggle.textContent = info.planned ? "Don't record this lesson" : "Record this lesson";
  toggle.dataset.record = String(!info.planned);
}

async function setPlan() {
  const toggle = $("#plan-toggle", HTMLButtonElement);
  const record = toggle.dataset.record === "true";
  toggle.disabled = true;
  const reply = await conn.call(REQUEST.RECORDING_PLAN, { record });
  toggle.disabled = false;
  if (reply.ok) {
    state.recordingInfo = reply.recording;
    state.recording = reply.recording.state;
    toast(record ? "This lesson will be recorded." : "This lesson won't be recorded.");
  } else {
    toast(`Couldn't change that: ${describeError(reply.error)}`, "error");
  }
  render();
}

/**
 * Ask before something the teacher cannot take back; resolves true on yes.
 * @param {string} title
 * @param {string} text
 * @param {string} yes the button's words
 * @returns {Promise<boolean>}
 */
function confirmWith(title, text, yes) {
  const dialog = $("#confirm", HTMLDialogElement);
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-yes").textContent = yes;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

// -- camera, mic, preview ----------------------------------------------------

/**
 * Say why the camera or microphone is not available (null: hide that).
 * @param {{name: string, message?: string} | null} err
 */
function showMediaError(err) {
  const el = $("#media-error");
  if (!err) {
    el.hidden = true;
    return;
  }
  el.hidden = false;
  el.textContent =
    err.name === "NotAllowedError"
      ? "Camera or microphone access was blocked. Allow it in the browser's site settings, then tap Go live."
      : `Camera or microphone unavailable: ${err.message || err.name}`;
}

/**
 * @param {MediaStream} stream
 * @param {string} label
 * @param {string} id
 */
/**
 * What showMediaError needs of a getUserMedia failure (a DOMException).
 * @param {unknown} err
 * @returns {{name: string, message?: string}}
 */
function mediaError(err) {
  return err instanceof Error ? err : { name: String(err) };
}

/**
 * A preview tile of a local stream.
 * @param {MediaStream} stream
 * @param {string} label
 * @param {string} id
 */
function previewTile(stream, label, id) {
  const video = h("video", { autoplay: true, playsinline: true, muted: true, class: "preview-video" });
  video.muted = true;
  video.srcObject = stream;
  const tile = h("figure", { class: "video-tile", dataset: { preview: id } }, video, h("figcaption", {}, label));
  safePlay(video);
  return tile;
}

/**
 * @param {string} deviceId the chosen device, or "" for the fallback
 * @param {MediaTrackConstraints | boolean} fallback
 * @returns {MediaTrackConstraints | boolean}
 */
function constraintsFor(deviceId, fallback) {
  return deviceId ? { deviceId: { exact: deviceId } } : fallback;
}

async function openPreview() {
  const video = constraintsFor($("#camera-select", HTMLSelectElement).value, {
    width: { ideal: 1280 },
    height: { ideal: 720 },
  });
  const audio = constraintsFor($("#mic-select", HTMLSelectElement).value, true);
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio });
    stopStream(state.previewStream);
    state.previewStream = stream;
    for (const t of stream.getTracks()) watchTrack(t);
    showMediaError(null);
    const main = $maybe("[data-preview=main]");
    const tile = previewTile(stream, "Classroom camera", "main");
    if (main) main.replaceWith(tile);
    else $("#previews").prepend(tile);
    await refreshDevices();
    return true;
  } catch (err) {
    showMediaError(mediaError(err));
    return false;
  } finally {
    render();
  }
}

/**
 * Stop a stream's tracks (its camera light goes out).
 * @param {MediaStream | null | undefined} stream
 */
function stopStream(stream) {
  for (const t of stream?.getTracks() || []) t.stop();
}

async function refreshDevices() {
  const cams = await listDevices("videoinput");
  const mics = await listDevices("audioinput");
  const outs = await listDevices("audiooutput");
  const currentCam = state.previewStream?.getVideoTracks()[0]?.getSettings().deviceId;
  const currentMic = state.previewStream?.getAudioTracks()[0]?.getSettings().deviceId;
  fillSelect($("#camera-select", HTMLSelectElement), cams, currentCam);
  fillSelect($("#mic-select", HTMLSelectElement), mics, currentMic);
  const others = cams.filter((c) => c.id !== $("#camera-select", HTMLSelectElement).value);
  fillSelect($("#camera2-select", HTMLSelectElement), others);
  if (!others.length) {
    $("#camera2-select").replaceChildren(h("option", { value: "" }, "No other camera found"));
  }
  const out = $("#output-select", HTMLSelectElement);
  if (sinkSupported && outs.length) {
    fillSelect(out, outs, state.outputId || "default");
  } else {
    out.replaceChildren(h("option", { value: "" }, "This device's speaker"));
    out.disabled = !sinkSupported;
    if (!sinkSupported) {
      $("#output-note").textContent =
        "This browser can't choose an output: whispers play wherever this device sends sound (pair your earpiece with the device).";
    }
  }
  render();
}

/**
 * Another camera or microphone was chosen: swap it in (and into what is published).
 * @param {"video" | "audio"} kind
 */
async function switchTrack(kind) {
  const preview = state.previewStream;
  if (!preview) return;
  const deviceId = $(kind === "video" ? "#camera-select" : "#mic-select", HTMLSelectElement).value;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
    const track = stream.getTracks()[0];
    watchTrack(track);
    const old = kind === "video" ? preview.getVideoTracks()[0] : preview.getAudioTracks()[0];
    if (old) {
      preview.removeTrack(old);
      old.stop();
    }
    preview.addTrack(track);
    const pub = kind === "video" ? state.cameraPub : state.micPub;
    if (pub) await conn.replaceTrack(pub, track);
    const v = $maybe("[data-preview=main] video", HTMLVideoElement);
    if (v) {
      v.srcObject = preview;
      safePlay(v);
    }
  } catch (err) {
    showMediaError(mediaError(err));
  }
}

/**
 * A camera or mic track of the classroom: when the device ends it (not this
 * page: stop() fires no "ended"), the teacher is told, with a way back.
 * @param {MediaStreamTrack} track
 */
function watchTrack(track) {
  track.addEventListener("ended", () => {
    const current = state.previewStream?.getTracks().includes(track);
    if (!current || !state.wantLive) return;
    state.deviceWarning = "ended";
    render();
  });
}

/**
 * "Restart camera": take the camera (and the mic, if it ended too) again and
 * put the new tracks on the same senders (replaceTrack: no renegotiation).
 */
async function restartCamera() {
  const preview = state.previewStream;
  const button = $("#restart-camera", HTMLButtonElement);
  button.disabled = true;
  try {
    /** @type {["video" | "audio", Publication | null, string][]} */
    const kinds = [
      ["video", state.cameraPub, $("#camera-select", HTMLSelectElement).value],
      ["audio", state.micPub, $("#mic-select", HTMLSelectElement).value],
    ];
    for (const [kind, pub, deviceId] of kinds) {
      const old = kind === "video" ? preview?.getVideoTracks()[0] : preview?.getAudioTracks()[0];
      // the camera always (a frozen picture is not always "ended"); the mic if it ended
      if (kind === "audio" && old && old.readyState === "live") continue;
      const constraints = kind === "video" ? { width: { ideal: 1280 }, height: { ideal: 720 } } : true;
      /** @type {MediaStream} */
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraintsFor(deviceId, constraints) });
      } catch {
        stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints }); // that one is gone
      }
      const track = stream.getTracks()[0];
      watchTrack(track);
      if (preview) {
        if (old) {
          preview.removeTrack(old);
          old.stop();
        }
        preview.addTrack(track);
      }
      if (pub) await conn.replaceTrack(pub, track);
    }
    const v = $maybe("[data-preview=main] video", HTMLVideoElement);
    if (v && preview) {
      v.srcObject = preview;
      safePlay(v);
    }
    state.cameraRestarts += 1;
    state.deviceWarning = null;
    showMediaError(null);
    toast("Camera restarted.");
  } catch (err) {
    showMediaError(mediaError(err));
  } finally {
    button.disabled = false;
    render();
  }
}

// -- going live ---------------------------------------------------------------

async function goLive() {
  if (state.wantLive) return;
  const hasLive = state.previewStream?.getTracks().some((t) => t.readyState === "live");
  if (!hasLive && !(await openPreview())) return;
  const preview = /** @type {MediaStream} */ (state.previewStream); // openPreview made it
  state.wantLive = true;
  render();
  const video = preview.getVideoTracks()[0];
  const audio = preview.getAudioTracks()[0];
  if (video) {
    const r = await conn.publish("camera", "video", video);
    if (r.ok) state.cameraPub = r.pub;
    else toast(`Camera: ${describeError(r.error)}`, "error");
  }
  if (audio) {
    const r = await conn.publish("mic", "audio", audio);
    if (r.ok) state.micPub = r.pub;
    else toast(`Microphone: ${describeError(r.error)}`, "error");
  }
  if (!state.cameraPub && !state.micPub) state.wantLive = false;
  render();
  await awake.want(state.wantLive);
}

async function addCamera() {
  const deviceId = $("#camera2-select", HTMLSelectElement).value;
  if (!deviceId || !state.wantLive) return;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: deviceId } } });
    const r = await conn.publish("camera", "video", stream.getVideoTracks()[0]);
    if (!r.ok) {
      stopStream(stream);
      toast(`Second camera: ${describeError(r.error)}`, "error");
      return;
    }
    const tile = previewTile(stream, `Camera ${state.extraCameras.length + 2}`, `extra-${state.extraCameras.length}`);
    $("#previews").append(tile);
    state.extraCameras.push({ pub: r.pub, stream, tile });
  } catch (err) {
    showMediaError(mediaError(err));
  }
  render();
}

async function askStop() {
  const ok = await confirmWith(
    "Stop being live?",
    "Coaches and observers will no longer see or hear your classroom. You can go live again.",
    "Stop",
  );
  if (ok) await stopLive();
}

async function askEnd() {
  const ok = await confirmWith(
    "End the lesson for everyone?",
    `Everyone leaves the session. Its recording is saved and kept for ${retentionDays()} days.`,
    "End the lesson",
  );
  if (!ok) return;
  const reply = await conn.call(REQUEST.END_SESSION, {});
  // the server ends the session before its answer arrives: that is success
  if (!reply.ok && conn.state !== "ended") {
    toast(`Couldn't end the lesson: ${describeError(reply.error)}`, "error");
  }
}

async function stopLive() {
  state.wantLive = false;
  const pubs = [state.cameraPub, state.micPub, ...state.extraCameras.map((c) => c.pub)];
  state.cameraPub = state.micPub = null;
  for (const c of state.extraCameras) {
    stopStream(c.stream);
    c.tile.remove();
  }
  state.extraCameras = [];
  for (const pub of pubs) if (pub) await conn.unpublish(pub);
  // stop means the camera is off: its light goes out
  stopStream(state.previewStream);
  state.previewStream = null;
  $maybe("[data-preview=main]")?.remove();
  state.deviceWarning = null;
  awake.want(false);
  toast("You're no longer live. Coaches can't see or hear the classroom.");
  render();
}

/** the page was hidden while live (iOS may end its camera meanwhile) */
let hiddenWhileLive = false;
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    hiddenWhileLive = state.wantLive;
  } else if (hiddenWhileLive && state.wantLive) {
    hiddenWhileLive = false;
    // a camera ended while hidden may not have said so: look
    const ended = state.previewStream?.getTracks().some((t) => t.readyState === "ended");
    if (ended) state.deviceWarning = "ended";
    else if (!state.deviceWarning) state.deviceWarning = "hidden";
    render();
  }
});

// -- recording ----------------------------------------------------------------

async function toggleRecording() {
  const pausing = state.recording !== "paused";
  const btn = $("#pause-recording", HTMLButtonElement);
  btn.disabled = true;
  const reply = await conn.call(pausing ? REQUEST.RECORDING_PAUSE : REQUEST.RECORDING_RESUME, {});
  btn.disabled = false;
  if (reply.ok) {
    state.recordingInfo = reply.recording;
    state.recording = reply.recording.state;
  } else if (reply.error.code === ERROR.UNKNOWN_EVENT) {
    toast(`Sorry — this server can't ${pausing ? "pause" : "resume"} recordings yet.`, "error");
  } else {
    toast(`Couldn't ${pausing ? "pause" : "resume"} the recording: ${describeError(reply.error)}`, "error");
  }
  render();
}

// -- whispers and cues ----------------------------------------------------------

/**
 * Play a whisper on the chosen output (the teacher's earpiece).
 * @param {HTMLMediaElement} el
 */
async function applySink(el) {
  if (!sinkSupported || !state.outputId) return;
  try {
    await el.setSinkId(state.outputId);
  } catch (err) {
    toast(`Can't play on that output: ${errorText(err)}`, "error");
  }
}

/** @type {AudioContext | null} */
let toneCtx = null;
/** Two short beeps on the chosen output: a cue with a tone, or "Test". */
async function playTone() {
  if (!toneCtx) {
    toneCtx = new AudioContext();
  }
  if (toneCtx.setSinkId && state.outputId) {
    try {
      await toneCtx.setSinkId(state.outputId === "default" ? "" : state.outputId);
    } catch {
      /* keep the default output */
    }
  }
  if (toneCtx.state === "suspended") await toneCtx.resume().catch(() => {});
  const t0 = toneCtx.currentTime + 0.02;
  for (const [i, freq] of [660, 880].entries()) {
    const osc = toneCtx.createOscillator();
    const gain = toneCtx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    const start = t0 + i * 0.16;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.15);
    osc.connect(gain).connect(toneCtx.destination);
    osc.start(start);
    osc.stop(start + 0.16);
  }
  state.tones += 1;
}

/**
 * Dark or light text, whichever reads on a cue of colour `hex` (#rrggbb).
 * @param {string | null} hex
 */
function textColorFor(hex) {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
  if (!m) return "#111";
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16) / 255);
  const lin = (/** @type {number} */ c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return lum > 0.25 ? "#111" : "#fff";
}

/**
 * A cue arrived: show it, then acknowledge its delivery once it is painted.
 * @type {ServerToClient["cue"]}
 */
function showCue(cue, ack) {
  const known = state.cues.get(cue.id);
  if (known) {
    // redelivered (e.g. after a reconnect): already on screen
    ack?.({ ok: true });
    return;
  }
  /** @type {ShownCue} */
  const entry = { cue, shown: false, acked: cue.state === "acknowledged" };
  state.cues.set(cue.id, entry);
  state.lastCue = entry;
  const from = cue.by_name || state.participants.get(cue.by)?.name;
  const color = cue.color || "#ffd23f";
  const card = h(
    "button",
    {
      type: "button",
      class: "cue-card",
      dataset: { cueId: cue.id },
      style: { "--cue-bg": color, "--cue-fg": textColorFor(color) },
      "aria-label": `Cue: ${cue.text}. Tap to let your coach know you saw it.`,
      onclick: () => acknowledge(cue.id),
    },
    cue.icon ? h("span", { class: "cue-icon", "aria-hidden": "true" }, cue.icon) : null,
    h("span", {
      class: "cue-text",
      // its longest word sets the size, so no word breaks in the middle
      style: { "--cue-chars": String(Math.max(8, ...cue.text.split(/\s+/).map((w) => w.length))) },
    }, cue.text),
    h("span", { class: "cue-meta" }, `${from ? `from ${from} · ` : ""}${clock(cue.sent_ms)} · tap when seen`),
  );
  $("#cues").prepend(card);
  if (cue.tone) playTone();
  navigator.vibrate?.(150);
  // "delivered" means shown: acknowledge after the cue has been painted
  requestAnimationFrame(() => {
    entry.shown = true;
    ack?.({ ok: true });
  });
}

/**
 * The teacher tapped a cue: tell its coach ("acknowledged").
 * @param {string} cueId
 */
async function acknowledge(cueId) {
  const entry = state.cues.get(cueId);
  const card = $maybe(`.cue-card[data-cue-id="${CSS.escape(cueId)}"]`);
  if (!entry || entry.acked) {
    card?.remove();
    return;
  }
  card?.classList.add("cue-acking");
  const reply = await conn.call(REQUEST.CUE_ACK, { cueId });
  if (reply.ok) {
    entry.acked = true;
    card?.remove();
  } else {
    card?.classList.remove("cue-acking");
    toast(`Couldn't tell your coach: ${describeError(reply.error)}`, "error");
  }
}

// -- connection events ----------------------------------------------------------

conn.onstate = () => render();
conn.onquality = () => render();
/** the join after which "Reconnected." was said (once media flows again) */
let toldReconnected = 1;
conn.onmedia = () => {
  if (conn.joins > toldReconnected && conn.health.state === "connected") {
    toldReconnected = conn.joins;
    toast("Reconnected.");
  }
  render();
};
conn.onpublished = () => render();

conn.onjoined = (reply) => {
  state.selfId = reply.participantId;
  state.participants = new Map(reply.participants.map((p) => [p.id, p]));
  state.participants.set(reply.participantId, { id: reply.participantId, role: reply.role, name: reply.name });
  state.whispering = reply.coaching?.whispering || [];
  state.recordingInfo = reply.recording || null;
  state.recording = reply.recording?.state || "unknown";
  render();
};

conn.ontrack = (remote) => {
  if (remote.info.source !== "whisper") return;
  const audio = h("audio", {
    autoplay: true,
    dataset: { source: "whisper", producerId: remote.info.producerId, mid: remote.mid },
  });
  audio.srcObject = new MediaStream([remote.track]);
  $("#whisper-audio").append(audio);
  state.whisperAudio.set(remote.mid, audio);
  applySink(audio).then(() =>
    safePlay(audio, () => toast("Tap anywhere to turn on whisper sound.", "error", 10000)),
  );
};

conn.ontrackremoved = (remote) => {
  state.whisperAudio.get(remote.mid)?.remove();
  state.whisperAudio.delete(remote.mid);
};

followRoom(conn, state, render)
  .on(EVENT.CUE, (cue, ack) => showCue(cue, ack))
  .on(EVENT.SESSION_ENDED, () => {
    state.wantLive = false;
    stopStream(state.previewStream);
    for (const c of state.extraCameras) stopStream(c.stream);
    awake.want(false);
  });

// -- wiring ---------------------------------------------------------------------

$("#go-live").addEventListener("click", goLive);
$("#stop").addEventListener("click", askStop);
$("#end-lesson").addEventListener("click", askEnd);
$("#plan-toggle").addEventListener("click", setPlan);
$("#pause-recording").addEventListener("click", toggleRecording);
$("#add-camera").addEventListener("click", addCamera);
$("#restart-camera").addEventListener("click", restartCamera);
$("#camera-select").addEventListener("change", () => switchTrack("video"));
$("#mic-select").addEventListener("change", () => switchTrack("audio"));
$("#camera2-select").addEventListener("change", render);
const outputSelect = $("#output-select", HTMLSelectElement);
outputSelect.addEventListener("change", async () => {
  state.outputId = outputSelect.value;
  localStorage.setItem(OUTPUT_KEY, state.outputId);
  for (const el of state.whisperAudio.values()) await applySink(el);
});
$("#test-output").addEventListener("click", () => playTone());
document.addEventListener("pointerdown", () => {
  for (const el of state.whisperAudio.values()) if (el.paused) safePlay(el);
});
navigator.mediaDevices?.addEventListener?.("devicechange", refreshDevices);

exposeHooks({
  role: () => "teacher",
  state: () => conn.state,
  joins: () => conn.joins,
  drops: () => conn.drops,
  socket: () => conn.socket,
  participantId: () => state.selfId,
  live: () => liveState(),
  recording: () => state.recording,
  recordingPlanned: () => Boolean(state.recordingInfo?.planned),
  whispering: () => copy(state.whispering),
  participants: () => copy([...state.participants.values()]),
  cues: () => [...state.cues.values()].map((e) => ({ ...copy(e.cue), shown: e.shown, acked: e.acked })),
  lastCue: () => (state.lastCue ? { ...copy(state.lastCue.cue), shown: state.lastCue.shown, acked: state.lastCue.acked } : null),
  tones: () => state.tones,
  remoteTracks: () => [...conn.remote.values()].map((r) => ({ mid: r.mid, ...copy(r.info) })),
  published: () => conn.publications.map((p) => ({ source: p.source, producerId: p.producerId, published: p.published })),
  outputId: () => state.outputId,
  wakeLock: () => ({ state: awake.state, held: awake.held, error: awake.error, requests: awake.requests }),
  deviceWarning: () => state.deviceWarning,
  cameraRestarts: () => state.cameraRestarts,
});

render();
conn.start();
if (noMedia) {
  // no camera on this page: the banner says how to open it securely
  for (const id of ["#camera-select", "#mic-select", "#camera2-select"]) {
    const select = $(id, HTMLSelectElement);
    select.replaceChildren(h("option", { value: "" }, "Not on this page: see the message above"));
    select.disabled = true;
  }
} else {
  openPreview();
}
