// The pre-lesson check (/check), for teachers and coaches before a lesson:
// camera (picture), microphone (level meter), earpiece (a test whisper on
// the chosen output), and the way to the server (check_net.js): signaling,
// a real media connection and which way works (UDP direct, TURN over UDP,
// TCP or TLS), the round trip and the upload. Each check is green, amber or
// red, in one sentence that says the fix.

import { readPage } from "./conn.js";
import { CheckLink, transportOf } from "./check_net.js";
import { animateMeter, fillSelect, getAudioContext, levelMeter, listDevices, safePlay } from "./media.js";
import { RELAY_REFUSED } from "./media_health.js";
import { mediaProblem } from "./secure.js";
import { $, $maybe, copy, errorText, exposeHooks, h } from "./ui.js";

/** @import { CheckPage, CheckStart } from "../../types/wire" */
/** @import { ProbeResult } from "./check_net.js" */

/** @typedef {"pending" | "green" | "amber" | "red"} Status */
/** @typedef {{status: Status, words: string, detail?: string}} Verdict */
/** @typedef {"camera" | "microphone" | "earpiece" | "signaling" | "connection" | "rtt" | "upload"} CheckName */

/** @type {Record<CheckName, string>} */
const TITLES = {
  camera: "Camera",
  microphone: "Microphone",
  earpiece: "Earpiece",
  signaling: "Signaling",
  connection: "Media connection",
  rtt: "Round trip",
  upload: "Upload",
};
/** @type {Record<string, string>} */
const TRANSPORT_WORDS = {
  direct: "UDP direct",
  "turn-udp": "TURN over UDP",
  "turn-tcp": "TURN over TCP",
  "turn-tls": "TURN over TLS",
};
/** What a lesson sends up (kbit/s): a camera's simulcast layers and the microphone. */
const LESSON_KBPS = 1000;
const RTT_GOOD_MS = 150;
const RTT_POOR_MS = 400;
/** A microphone peak above this is sound (the fake device's beep, a voice). */
const MIC_SOUND = 0.02;
const MIC_LISTEN_MS = 6000;
const CAMERA_WAIT_MS = 6000;

/** @type {CheckPage} */
const page = readPage();
const sinkSupported = "setSinkId" in HTMLMediaElement.prototype;

const state = {
  run: 0,
  /** @type {Record<CheckName, Verdict>} */
  verdicts: blankVerdicts(),
  /** path id -> what its test connection found @type {Map<string, ProbeResult | null>} */
  paths: new Map(),
  /** @type {CheckStart | null} */
  start: null,
  /** @type {ProbeResult | null} */
  lesson: null,
  /** @type {CheckLink | null} */
  link: null,
  /** @type {MediaStream | null} */
  stream: null,
  /** @type {(() => void) | null} */
  meterStop: null,
  micPeak: 0,
  whispersPlayed: 0,
  earpieceAnswered: false,
  /** @type {Record<string, number | null>} ms since the page opened */
  timings: { reportMs: null, relayRefusedMs: null },
  /** @type {(() => void)[]} */
  cleanups: [],
};

/** @returns {Record<CheckName, Verdict>} */
function blankVerdicts() {
  const pending = () => ({ status: /** @type {Status} */ ("pending"), words: "Checking…" });
  return {
    camera: pending(), microphone: pending(), earpiece: pending(), signaling: pending(),
    connection: pending(), rtt: pending(), upload: pending(),
  };
}

/**
 * @param {CheckName} name
 * @param {Status} status
 * @param {string} words one sentence: what was found, and the fix
 * @param {string} [detail]
 */
function verdict(name, status, words, detail) {
  state.verdicts[name] = { status, words, detail };
  render();
}

// -- rendering -------------------------------------------------------------------

function render() {
  for (const [name, v] of Object.entries(state.verdicts)) {
    const row = $maybe(`.check-row[data-check="${name}"]`);
    if (!row) continue;
    row.dataset.status = v.status;
    row.replaceChildren(
      h("span", { class: "check-dot", "aria-hidden": "true" }),
      h("span", { class: "check-title" }, TITLES[/** @type {CheckName} */ (name)]),
      h("span", { class: "check-words" }, v.words),
      ...(v.detail ? [h("span", { class: "check-detail" }, v.detail)] : []),
    );
  }
  renderPaths();
  const all = Object.values(state.verdicts);
  const decided = all.every((v) => v.status !== "pending");
  if (decided && state.timings.reportMs == null) state.timings.reportMs = Math.round(performance.now());
  const red = all.filter((v) => v.status === "red").length;
  // the earpiece waits for the person (play, then say): not a problem yet
  const waiting = state.verdicts.earpiece.status === "amber" && !state.earpieceAnswered;
  const amber = all.filter((v) => v.status === "amber").length - (waiting ? 1 : 0);
  const summary = $("#check-summary");
  summary.dataset.status = !decided ? "pending" : red ? "red" : amber ? "amber" : "green";
  summary.textContent = !decided
    ? "Checking…"
    : red
      ? `Not ready: ${red === 1 ? "one thing needs" : `${red} things need`} fixing (in red below).`
      : amber
        ? `Ready for a lesson, with ${amber === 1 ? "one thing" : `${amber} things`} to know (in amber below).`
        : waiting
          ? "Ready for a lesson: play a test whisper to check the earpiece."
          : "Ready for a lesson.";
  $("#check-again", HTMLButtonElement).disabled = !decided;
  $("#copy-report", HTMLButtonElement).disabled = !decided;
}

function renderPaths() {
  const paths = state.start?.paths || [];
  /** @type {HTMLElement[]} */
  const rows = paths.map((p) => {
    const r = state.paths.get(p.id);
    const [status, words] = r === undefined || r === null ? ["pending", "Trying…"] : pathWords(r);
    return h("li", { class: "check-row check-path", dataset: { path: p.id, status } },
      h("span", { class: "check-dot", "aria-hidden": "true" }),
      h("span", { class: "check-title" }, TRANSPORT_WORDS[p.transport] || p.transport),
      h("span", { class: "check-words" }, words),
      ...(p.url ? [h("span", { class: "check-detail" }, p.url)] : []));
  });
  if (state.start && !paths.some((p) => p.url)) {
    rows.push(h("li", { class: "check-row check-path", dataset: { path: "turn", status: "none" } },
      h("span", { class: "check-dot", "aria-hidden": "true" }),
      h("span", { class: "check-title" }, "TURN (the school's relay)"),
      h("span", { class: "check-words" }, "Not set up on this server.")));
  }
  $("#paths").replaceChildren(...rows);
}

/**
 * @param {ProbeResult} r
 * @returns {[Status, string]}
 */
function pathWords(r) {
  if (r.connected) {
    const rtt = r.rttMs != null ? `, ${Math.round(r.rttMs)} ms round trip` : "";
    return ["green", `Works${rtt}${r.media ? "" : " (the server saw no media yet)"}.`];
  }
  if (refused(r)) return ["red", RELAY_REFUSED];
  if (unreachable(r)) return ["red", "The relay did not answer."];
  if (r.failure === "dtls failed") return ["red", "A path was found, but the encrypted connection (DTLS) failed."];
  return ["red", "No route."];
}

/** @param {ProbeResult} r the relay said 401 (or 403) to our credential */
const refused = (r) => r.errors.some((e) => e.code === 401 || e.code === 403);
/** @param {ProbeResult} r the relay could not be reached (Chromium's 701) */
const unreachable = (r) => !r.candidates && r.errors.some((e) => e.code === 701);

// -- camera and microphone ---------------------------------------------------------------

async function checkDevices() {
  const problem = mediaProblem();
  if (problem) {
    verdict("camera", "red", problem.text);
    verdict("microphone", "red", problem.text);
    return;
  }
  /** @type {MediaStream | null} */
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints());
  } catch (err) {
    // each device on its own: one missing or busy one should not hide the other
    stream = new MediaStream();
    for (const kind of /** @type {const} */ (["video", "audio"])) {
      try {
        const one = await navigator.mediaDevices.getUserMedia({ [kind]: constraints()[kind] });
        for (const t of one.getTracks()) stream.addTrack(t);
      } catch (e) {
        verdict(kind === "video" ? "camera" : "microphone", "red", deviceError(kind, e ?? err));
      }
    }
  }
  state.stream = stream;
  state.cleanups.push(() => {
    for (const t of stream?.getTracks() || []) t.stop();
  });
  await refreshDevices();
  const video = stream.getVideoTracks()[0];
  const audio = stream.getAudioTracks()[0];
  if (video) watchCamera(stream);
  if (audio) watchMicrophone(stream);
}

/** @returns {{video: MediaTrackConstraints | boolean, audio: MediaTrackConstraints | boolean}} */
function constraints() {
  const cam = $("#camera-select", HTMLSelectElement).value;
  const mic = $("#mic-select", HTMLSelectElement).value;
  return {
    video: cam ? { deviceId: { exact: cam } } : { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: mic ? { deviceId: { exact: mic } } : true,
  };
}

/**
 * One sentence for a getUserMedia failure, with the fix.
 * @param {"video" | "audio"} kind
 * @param {unknown} err
 */
function deviceError(kind, err) {
  const what = kind === "video" ? "camera" : "microphone";
  const name = err instanceof Error ? err.name : "";
  if (name === "NotAllowedError") return `The ${what} is blocked: allow it in the browser's site settings, then check again.`;
  if (name === "NotFoundError" || name === "OverconstrainedError") return `No ${what} found: connect one, or use a device that has one.`;
  if (name === "NotReadableError") return `The ${what} is busy: close other apps or tabs that use it, then check again.`;
  return `The ${what} can't be used (${errorText(err)}): restart the browser, then check again.`;
}

/** @param {MediaStream} stream */
function watchCamera(stream) {
  const video = $("#check-video", HTMLVideoElement);
  video.srcObject = stream;
  safePlay(video);
  const run = state.run;
  const started = performance.now();
  const look = () => {
    if (run !== state.run) return;
    if (video.videoWidth > 0) {
      const size = `${video.videoWidth}×${video.videoHeight}`;
      if (video.videoWidth >= 640) verdict("camera", "green", `The camera works (${size}).`);
      else verdict("camera", "amber", `The camera works, but its picture is small (${size}): coaches will see less detail; use a better camera if you can.`);
    } else if (performance.now() - started > CAMERA_WAIT_MS) {
      verdict("camera", "red", "The camera gives no picture: close other apps that use it, then check again.");
    } else {
      setTimeout(look, 100);
    }
  };
  look();
}

/** @param {MediaStream} stream */
function watchMicrophone(stream) {
  const meter = levelMeter(new MediaStream(stream.getAudioTracks()));
  state.meterStop = animateMeter(meter, $("#mic-meter"));
  state.cleanups.push(() => state.meterStop?.());
  const run = state.run;
  const started = performance.now();
  const look = () => {
    if (run !== state.run) return;
    state.micPeak = Math.max(state.micPeak, meter.level());
    if (state.micPeak > MIC_SOUND) {
      verdict("microphone", "green", "The microphone hears sound: the bar moves when you speak.");
      return;
    }
    if (performance.now() - started > MIC_LISTEN_MS && state.verdicts.microphone.status === "pending") {
      verdict("microphone", "amber", "The microphone hears only silence: say something, and check it isn't muted.");
    }
    setTimeout(look, 100); // keeps listening: sound later still turns it green
  };
  look();
}

async function refreshDevices() {
  const cam = state.stream?.getVideoTracks()[0]?.getSettings().deviceId;
  const mic = state.stream?.getAudioTracks()[0]?.getSettings().deviceId;
  fillSelect($("#camera-select", HTMLSelectElement), await listDevices("videoinput"), cam);
  fillSelect($("#mic-select", HTMLSelectElement), await listDevices("audioinput"), mic);
  const out = $("#output-select", HTMLSelectElement);
  const outputs = await listDevices("audiooutput");
  if (sinkSupported && outputs.length) {
    fillSelect(out, outputs, out.value || localStorage.getItem("sidecoach.whisperOutput") || "default");
  } else {
    out.replaceChildren(h("option", { value: "" }, "This device's speaker"));
    out.disabled = true;
  }
}

// -- the earpiece -------------------------------------------------------------------------------

function earpieceWaiting() {
  verdict("earpiece", "amber", sinkSupported
    ? "Play a test whisper, then say whether you heard it in the earpiece."
    : "This browser can't choose an output: whispers play wherever this device sends sound (pair the earpiece with it); play a test whisper to hear one.");
}

/** A whisper-like sound (three breathy syllables), played on the chosen output like a real whisper. */
async function playWhisper() {
  const ctx = getAudioContext();
  await ctx.resume().catch(() => {});
  const dest = ctx.createMediaStreamDestination();
  const noise = ctx.createBuffer(1, ctx.sampleRate * 1.4, ctx.sampleRate);
  const data = noise.getChannelData(0);
  for (let i = 0; i < data.length; i += 1) data[i] = Math.random() * 2 - 1;
  const src = ctx.createBufferSource();
  src.buffer = noise;
  const band = ctx.createBiquadFilter();
  band.type = "bandpass";
  band.frequency.value = 2500;
  band.Q.value = 0.8;
  const gain = ctx.createGain();
  const t0 = ctx.currentTime + 0.05;
  gain.gain.setValueAtTime(0, t0);
  for (const [i, at] of [0, 0.45, 0.9].entries()) {
    gain.gain.linearRampToValueAtTime(i === 1 ? 0.9 : 0.6, t0 + at + 0.08);
    gain.gain.linearRampToValueAtTime(0, t0 + at + 0.35);
  }
  src.connect(band).connect(gain).connect(dest);
  const audio = $("#whisper-test", HTMLAudioElement);
  audio.srcObject = dest.stream;
  const output = $("#output-select", HTMLSelectElement).value;
  if (sinkSupported && output) {
    try {
      await audio.setSinkId(output);
    } catch (err) {
      verdict("earpiece", "red", `That output can't be used (${errorText(err)}): choose another one and play again.`);
      return;
    }
  }
  await safePlay(audio);
  src.start(t0);
  state.whispersPlayed += 1;
  $("#heard").hidden = false;
}

/** @param {boolean} heard */
function answerHeard(heard) {
  state.earpieceAnswered = true;
  const out = $("#output-select", HTMLSelectElement);
  const label = out.selectedOptions[0]?.textContent || "this device";
  if (heard) {
    localStorage.setItem("sidecoach.whisperOutput", out.value);
    verdict("earpiece", "green", `You heard the test whisper on “${label}”: whispers will play there.`);
  } else {
    verdict("earpiece", "red", "No whisper heard: pair the earpiece with this device, choose it above, then play again.");
  }
  $("#heard").hidden = true;
}

// -- the way to the server ---------------------------------------------------------------------

/** A small moving picture for the test connections (no camera needed). */
function testTrack(width = 160, height = 90, busy = false) {
  const canvas = h("canvas", { width, height });
  const g = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  let n = 0;
  const draw = () => {
    n += 1;
    g.fillStyle = "#101318";
    g.fillRect(0, 0, width, height);
    // the lesson's connection gets a busy picture: the encoder uses its whole budget
    for (let i = 0; i < (busy ? 400 : 1); i += 1) {
      g.fillStyle = `hsl(${(n * 37 + i * 53) % 360} 70% ${30 + ((i * 7) % 50)}%)`;
      const w = busy ? 8 + ((i * 13) % 40) : width / 4;
      g.fillRect(busy ? Math.random() * width : (n * 4) % width, busy ? Math.random() * height : 0, w, busy ? w : height);
    }
  };
  draw();
  const timer = setInterval(draw, busy ? 66 : 100);
  const track = canvas.captureStream(busy ? 15 : 10).getVideoTracks()[0];
  state.cleanups.push(() => {
    clearInterval(timer);
    track.stop();
  });
  return track;
}

async function checkNetwork() {
  const link = new CheckLink();
  state.link = link;
  state.cleanups.push(() => link.close());
  const opened = await link.open();
  if (!opened.ok) {
    verdict("signaling", "red", "Can't reach the server's signaling: check this address, or ask your admin whether a proxy blocks /socket.io.", opened.why);
    for (const name of /** @type {CheckName[]} */ (["connection", "rtt", "upload"])) {
      verdict(name, "red", "Not checked: the page can't talk to the server.");
    }
    return;
  }
  const start = opened.start;
  state.start = start;
  const ms = `${Math.round(opened.ms)} ms`;
  if (opened.transport === "websocket") verdict("signaling", "green", `Connected (WebSocket), answered in ${ms}.`);
  else verdict("signaling", "amber", "Connected without WebSockets (a proxy or firewall blocks them): lessons work, a little slower; ask your admin to let WebSockets through.", ms);
  for (const p of start.paths) state.paths.set(p.id, null);
  render();
  const probes = start.paths.map(async (p) => {
    const r = await link.probe(p.id, p, "screen", testTrack());
    state.paths.set(p.id, r);
    if (refused(r) && state.timings.relayRefusedMs == null) state.timings.relayRefusedMs = Math.round(performance.now());
    render();
    return r;
  });
  const lesson = link.probe("lesson", start.lesson, "camera", testTrack(640, 360, true), {
    measureUpload: true,
  });
  const results = await Promise.all(probes);
  // no way worked alone: the lesson's connection (the same servers) cannot
  // either, so the report need not wait for its time-out
  const found = results.some((r) => r.connected) ? await lesson : notConnected("lesson");
  state.lesson = found;
  judgeConnection(found, results, start);
  judgeRtt(found);
  judgeUpload(found);
  await link.close();
}

/**
 * A test connection that was not made.
 * @param {string} id
 * @returns {ProbeResult}
 */
function notConnected(id) {
  return {
    id, connected: false, media: false, iceConnected: false, candidates: 0, errors: [], local: null,
    relayProtocol: null, rttMs: null, uploadKbps: null, estimateKbps: null, ms: 0, failure: "no route",
  };
}

/**
 * @param {ProbeResult} lesson the connection a lesson's page would make
 * @param {ProbeResult[]} paths each way alone
 * @param {CheckStart} start
 */
function judgeConnection(lesson, paths, start) {
  const how = transportOf(lesson);
  const relays = paths.filter((r) => r.id !== "direct");
  const refusedAny = relays.some(refused) || refused(lesson);
  const policy = start.lesson.iceTransportPolicy === "relay" ? " (this server sends every lesson through the relay)" : "";
  if (how === "direct" || how === "turn-udp") {
    const note = refusedAny ? ` ${RELAY_REFUSED}` : "";
    verdict("connection", refusedAny ? "amber" : "green", `Media flows over ${TRANSPORT_WORDS[how]}${policy}.${note}`);
  } else if (how) {
    verdict("connection", "amber", `Media flows only through the school's relay, over ${how === "turn-tls" ? "TLS" : "TCP"}${policy}: lessons work, but video can lag when the network is busy; ask your network admin to allow UDP to the server.`);
  } else if (refusedAny) {
    verdict("connection", "red", RELAY_REFUSED);
  } else if ([lesson, ...paths].some((r) => r.failure === "dtls failed")) {
    verdict("connection", "red", "A path was found, but the encrypted connection (DTLS) failed: a firewall may be inspecting the traffic; ask your network admin to let it through to the server.");
  } else if (!relays.length) {
    verdict("connection", "red", "No route: this network blocks media to the server and the school has no relay; ask your admin to set up TURN (SIDECOACH_TURN_URLS).");
  } else if (relays.every(unreachable)) {
    verdict("connection", "red", "No route: the school's relay can't be reached from this network; ask your admin to check the relay's address and firewall.");
  } else {
    verdict("connection", "red", "No route: neither directly nor through the school's relay; ask your admin whether the relay can reach the server.");
  }
}

/** @param {ProbeResult} lesson */
function judgeRtt(lesson) {
  if (!lesson.connected || lesson.rttMs == null) {
    verdict("rtt", "red", "Not measured: no media connection to the server.");
    return;
  }
  const ms = Math.round(lesson.rttMs);
  if (ms < RTT_GOOD_MS) verdict("rtt", "green", `${ms} ms round trip: whispers arrive at once.`);
  else if (ms < RTT_POOR_MS) verdict("rtt", "amber", `${ms} ms round trip: whispers arrive a little late; a wired or closer network helps.`);
  else verdict("rtt", "red", `${ms} ms round trip: whispers arrive late; use a wired or closer network.`);
}

/** @param {ProbeResult} lesson */
function judgeUpload(lesson) {
  if (!lesson.connected) {
    verdict("upload", "red", "Not measured: no media connection to the server.");
    return;
  }
  const got = Math.max(lesson.uploadKbps ?? 0, lesson.estimateKbps ?? 0);
  const mbit = (/** @type {number} */ kbps) => `${(kbps / 1000).toFixed(1)} Mbit/s`;
  const detail = `the server received ${mbit(lesson.uploadKbps ?? 0)}; the browser estimates ${mbit(lesson.estimateKbps ?? 0)}`;
  if (got >= LESSON_KBPS) verdict("upload", "green", `${mbit(got)} up: enough for a lesson (about ${mbit(LESSON_KBPS)}).`, detail);
  else if (got >= LESSON_KBPS / 3) verdict("upload", "amber", `${mbit(got)} up: coaches will see a smaller picture (a lesson sends about ${mbit(LESSON_KBPS)}); a less busy network helps.`, detail);
  else verdict("upload", "red", `${mbit(got)} up: too little for a lesson's video (about ${mbit(LESSON_KBPS)}); use another network.`, detail);
}

// -- the page ---------------------------------------------------------------------------------

async function runCheck() {
  for (const clean of state.cleanups.splice(0)) clean();
  state.run += 1;
  state.verdicts = blankVerdicts();
  state.paths = new Map();
  state.start = null;
  state.lesson = null;
  state.micPeak = 0;
  state.earpieceAnswered = false;
  state.timings = { reportMs: null, relayRefusedMs: null };
  $("#heard").hidden = true;
  earpieceWaiting();
  render();
  await Promise.all([checkDevices(), checkNetwork()]);
}

function reportText() {
  const lines = [`Sidecoach pre-lesson check, ${new Date().toLocaleString()}, ${navigator.userAgent}`];
  for (const [name, v] of Object.entries(state.verdicts)) {
    lines.push(`${TITLES[/** @type {CheckName} */ (name)]}: ${v.status.toUpperCase()} ${v.words}${v.detail ? ` (${v.detail})` : ""}`);
  }
  for (const p of state.start?.paths || []) {
    const r = state.paths.get(p.id);
    lines.push(`  ${TRANSPORT_WORDS[p.transport]} ${p.url || ""}: ${r ? pathWords(r)[1] : "not tried"}`);
  }
  return lines.join("\n");
}

if (page.back) {
  const back = $("#back-link", HTMLAnchorElement);
  back.href = page.back;
  back.hidden = false;
}
$("#check-again").addEventListener("click", () => runCheck());
$("#copy-report").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(reportText());
  } catch {
    /* no clipboard here: the report stays on the page */
  }
});
$("#play-whisper").addEventListener("click", () => playWhisper());
$("#heard-yes").addEventListener("click", () => answerHeard(true));
$("#heard-no").addEventListener("click", () => answerHeard(false));
for (const id of ["#camera-select", "#mic-select"]) {
  $(id).addEventListener("change", () => runCheck());
}
window.addEventListener("pagehide", () => state.link?.close());

exposeHooks({
  verdicts: () => copy(state.verdicts),
  paths: () => Object.fromEntries([...state.paths].map(([id, r]) => [id, copy(r)])),
  lesson: () => copy(state.lesson),
  done: () => state.timings.reportMs != null,
  timings: () => copy(state.timings),
  whispersPlayed: () => state.whispersPlayed,
  sinkId: () => $("#whisper-test", HTMLAudioElement).sinkId,
  report: () => reportText(),
});

runCheck();
