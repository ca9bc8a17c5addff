// The coach's page: watch and hear the classroom; push-to-talk whisper; cues
// with delivery/ack state; shared tallies with undo; notes.

import { ERROR, EVENT, REQUEST } from "./protocol.js";
import { mediaProblem } from "./secure.js";
import { animateMeter, fillSelect, levelMeter, listDevices } from "./media.js";
import { $, $$, clock, copy, describeError, exposeHooks, h, isTyping, plural, toast } from "./ui.js";
import { startViewer } from "./viewer.js";

/** @import { Counts, Cue, CueStateName, Note, RequestMessage, TallyEvent, Visibility } from "../../types/wire" */
/** @import { Publication } from "./conn.js" */
/** @import { Phase } from "./lesson_state.js" */

/** localStorage: the microphone this browser whispers with */
const MIC_KEY = "sidecoach.whisperMic";

const viewer = startViewer({ role: "coach" });
const { conn, state: vs } = viewer;

/** @typedef {"pending" | "preview" | "connecting" | "ready" | "blocked" | "unavailable" | "insecure"} MicState */
/** @typedef {"idle" | "starting" | "live" | "stopping"} PttPhase */

const state = {
  /** @type {string[]} */
  prompts: [],
  /** @type {string[]} */
  categories: [],
  /** @type {Counts} */
  counts: {},
  /** @type {TallyEvent | null} */
  lastTally: null,
  /** id -> cue (latest state) @type {Map<string, Cue>} */
  cues: new Map(),
  /** @type {Note[]} */
  notes: [],
  /** ids of notes this page wrote @type {Set<string>} */
  myNotes: new Set(),
  /** @type {MicState} */
  mic: "pending",
  /** @type {MediaStreamTrack | null} */
  whisperTrack: null,
  /** the chosen microphone (remembered per browser) */
  micDevice: localStorage.getItem(MIC_KEY) || "",
  /** @type {Publication | null} */
  whisperPub: null,
  /** @type {{held: boolean, phase: PttPhase}} */
  ptt: { held: false, phase: "idle" },
  pttErrors: 0,
};

/** @param {string} id */
const nameOf = (id) => vs.participants.get(id)?.name || "a coach";

// -- whisper (push-to-talk) ----------------------------------------------------

/**
 * This browser's chosen microphone, or the default (also when the chosen
 * one is gone).
 * @param {string} deviceId
 * @returns {Promise<MediaStreamTrack>}
 */
async function openMic(deviceId) {
  /** @type {MediaTrackConstraints} */
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: { ...audio, deviceId: { exact: deviceId } } });
      return stream.getAudioTracks()[0];
    } catch (err) {
      if (err instanceof DOMException && err.name === "NotAllowedError") throw err;
      // unplugged since: the default microphone
    }
  }
  const stream = await navigator.mediaDevices.getUserMedia({ audio });
  return stream.getAudioTracks()[0];
}

/** The join screen's level meter on the chosen microphone. @type {(() => void) | null} */
let meterStop = null;

/**
 * Take the microphone (the remembered one first) for the join screen's
 * picker and meter, or for the whisper once joined.
 * @param {string} deviceId
 * @returns {Promise<boolean>} there is a microphone
 */
async function takeMic(deviceId) {
  const problem = mediaProblem();
  if (problem) {
    state.mic = "insecure";
    MIC_WORDS.insecure = `${problem.text} You can still send cues.`;
    renderTools();
    return false;
  }
  try {
    const track = await openMic(deviceId);
    const old = state.whisperTrack;
    state.whisperTrack = track;
    if (old && old !== track) old.stop();
    state.micDevice = track.getSettings().deviceId || deviceId;
    if (state.whisperPub) await conn.replaceTrack(state.whisperPub, track);
    if (state.mic !== "ready" && state.mic !== "connecting") state.mic = "preview";
  } catch (err) {
    state.mic = err instanceof DOMException && err.name === "NotAllowedError" ? "blocked" : "unavailable";
    renderTools();
    return false;
  }
  const select = $("#join-mic-select", HTMLSelectElement);
  fillSelect(select, await listDevices("audioinput"), state.micDevice);
  if (!vs.entered) startJoinMeter();
  else if (state.whisperTrack) state.whisperTrack.enabled = state.ptt.phase === "live" || state.ptt.phase === "starting";
  renderTools();
  return true;
}

/** The meter under the picker: this microphone's level, live. */
function startJoinMeter() {
  meterStop?.();
  meterStop = null;
  const track = state.whisperTrack;
  if (!track) return;
  track.enabled = true; // nothing is published before Join
  try {
    meterStop = animateMeter(levelMeter(new MediaStream([track])), $("#join-mic-meter"));
  } catch {
    meterStop = null;
  }
}

/** Publish the whisper microphone (muted until the button is held). */
async function enableMic() {
  if (!state.whisperTrack && !(await takeMic(state.micDevice))) return;
  const track = /** @type {MediaStreamTrack} */ (state.whisperTrack);
  // Nothing from this microphone leaves the laptop until the button is held;
  // the server also forwards the whisper only while held.
  track.enabled = false;
  if (state.whisperPub) return;
  state.mic = "connecting";
  const r = await conn.publish("whisper", "audio", track);
  if (r.ok) {
    state.whisperPub = r.pub;
  } else {
    state.mic = "unavailable";
    toast(`Whisper microphone: ${describeError(r.error)}`, "error");
  }
  renderTools();
}

const micSelect = $("#join-mic-select", HTMLSelectElement);
micSelect.addEventListener("change", () => {
  localStorage.setItem(MIC_KEY, micSelect.value);
  takeMic(micSelect.value);
});

viewer.listeners.enter.push(() => {
  meterStop?.();
  meterStop = null;
  $("#join-mic-meter").style.setProperty("--level", "0");
  enableMic();
});

/** The whisper can reach the teacher: published, and this page's media flows. */
function micReady() {
  return Boolean(state.whisperPub?.published) && conn.state === "joined" && conn.health.state === "connected";
}

async function pressTalk() {
  if (state.ptt.held) return;
  state.ptt.held = true;
  if (!micReady()) {
    state.ptt.held = false;
    toast(describeError({ code: ERROR.NO_WHISPER_TRACK }), "error");
    return;
  }
  const track = /** @type {MediaStreamTrack} */ (state.whisperTrack); // micReady: published
  track.enabled = true;
  state.ptt.phase = "starting";
  renderTools();
  const reply = await conn.call(REQUEST.WHISPER_START, {});
  if (!reply.ok) {
    state.ptt.held = false;
    state.ptt.phase = "idle";
    track.enabled = false;
    state.pttErrors += 1;
    toast(`Can't whisper: ${describeError(reply.error)}`, "error");
    renderTools();
    return;
  }
  if (!state.ptt.held) {
    await stopTalking();
    return;
  }
  state.ptt.phase = "live";
  renderTools();
}

async function releaseTalk() {
  if (!state.ptt.held) return;
  state.ptt.held = false;
  if (state.ptt.phase === "live") await stopTalking();
  // while "starting", pressTalk stops once whisper-start is answered
}

async function stopTalking() {
  state.ptt.phase = "stopping";
  if (state.whisperTrack) state.whisperTrack.enabled = false;
  renderTools();
  await conn.call(REQUEST.WHISPER_STOP, {});
  state.ptt.phase = "idle";
  renderTools();
}

const ptt = $("#ptt", HTMLButtonElement);
ptt.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  e.preventDefault();
  ptt.setPointerCapture?.(e.pointerId);
  pressTalk();
});
for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) {
  ptt.addEventListener(ev, () => releaseTalk());
}
ptt.addEventListener("contextmenu", (e) => e.preventDefault());
document.addEventListener("keydown", (e) => {
  if (isTyping(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.code === "Space") {
    e.preventDefault();
    if (!e.repeat) pressTalk();
  } else if (/^Digit[1-9]$/.test(e.code) && !e.repeat) {
    const category = state.categories[Number(e.code.slice(5)) - 1];
    if (category) tally(category);
  }
});
document.addEventListener("keyup", (e) => {
  if (e.code === "Space" && (state.ptt.held || !isTyping(e.target))) {
    e.preventDefault();
    releaseTalk();
  }
});
window.addEventListener("blur", () => releaseTalk());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") releaseTalk();
});
$("#enable-mic").addEventListener("click", enableMic);

// -- cues --------------------------------------------------------------------

/**
 * @param {RequestMessage<"cue">} msg
 * @returns {Promise<boolean>} sent
 */
async function sendCue(msg) {
  const reply = await conn.call(REQUEST.CUE, msg);
  if (!reply.ok) {
    toast(`Cue not sent: ${describeError(reply.error)}`, "error");
    return false;
  }
  mergeCue(reply.cue);
  return true;
}

/**
 * A cue's newer state; a late, older state (sent after delivered) changes nothing.
 * @param {Cue} cue
 */
function mergeCue(cue) {
  const prev = state.cues.get(cue.id);
  /** @type {Record<CueStateName, number>} */
  const order = { sent: 0, delivered: 1, acknowledged: 2 };
  const merged = { ...prev, ...cue };
  if (prev?.state && order[prev.state] > order[cue.state]) merged.state = prev.state;
  state.cues.set(cue.id, merged);
  renderCueLog();
}

/** @type {Record<string, string>} */
const CUE_STATE_WORDS = {
  sent: "sent · waiting for the teacher's screen",
  delivered: "✓ on the teacher's screen",
  acknowledged: "✓✓ seen by the teacher",
};

function renderCueLog() {
  const items = [...state.cues.values()].reverse().slice(0, 30);
  $("#cue-log").replaceChildren(
    ...items.map((c) =>
      h(
        "li",
        { class: "cue-log-item", dataset: { cueId: c.id, state: c.state } },
        h("span", { class: "cue-log-time" }, clock(c.sent_ms)),
        " ",
        c.icon ? `${c.icon} ` : "",
        h("span", { class: "cue-log-text" }, c.text),
        " ",
        h("span", { class: "cue-log-state" }, CUE_STATE_WORDS[c.state] || c.state),
        c.by !== vs.selfId ? h("span", { class: "muted" }, ` (by ${nameOf(c.by)})`) : null,
      ),
    ),
  );
}

function renderPrompts() {
  $("#prompt-buttons").replaceChildren(
    ...state.prompts.map((text, i) =>
      h(
        "button",
        {
          type: "button",
          class: "btn prompt-button",
          dataset: { promptIndex: i },
          onclick: () =>
            sendCue({
              promptIndex: i,
              color: $("#cue-color", HTMLSelectElement).value,
              tone: $("#cue-tone", HTMLInputElement).checked,
            }),
        },
        text,
      ),
    ),
  );
}

$("#cue-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#cue-text", HTMLInputElement);
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  /** @type {RequestMessage<"cue">} */
  const msg = {
    text,
    color: $("#cue-color", HTMLSelectElement).value,
    tone: $("#cue-tone", HTMLInputElement).checked,
  };
  const icon = $("#cue-icon", HTMLSelectElement).value;
  if (icon) msg.icon = icon;
  if (await sendCue(msg)) input.value = "";
});

// -- tallies -------------------------------------------------------------------

/** @param {string} category */
async function tally(category) {
  const reply = await conn.call(REQUEST.TALLY, { category });
  if (reply.ok) setCounts(reply.counts);
  else toast(`Tally not counted: ${describeError(reply.error)}`, "error");
}

/** @param {Counts} counts */
function setCounts(counts) {
  state.counts = { ...counts };
  renderTallies();
}

function renderTallies() {
  const wrap = $("#tally-buttons");
  if (wrap.children.length !== state.categories.length) {
    wrap.replaceChildren(
      ...state.categories.map((cat, i) =>
        h(
          "button",
          {
            type: "button",
            class: "btn tally-button",
            dataset: { category: cat },
            "aria-keyshortcuts": i < 9 ? String(i + 1) : null,
            onclick: () => tally(cat),
          },
          h("span", { class: "tally-name" }, cat),
          h("span", { class: "tally-count", "aria-live": "polite" }, "0"),
          i < 9 ? h("kbd", { class: "tally-key" }, String(i + 1)) : null,
        ),
      ),
    );
  }
  for (const btn of wrap.children) {
    const count = btn.querySelector(".tally-count");
    const category = btn instanceof HTMLElement ? btn.dataset.category : undefined;
    if (count && category != null) count.textContent = String(state.counts[category] ?? 0);
  }
  const last = state.lastTally;
  $("#tally-last").textContent = last
    ? `${last.undo ? "Undid" : "+1"} ${last.category} (${nameOf(last.by)}, ${clock(last.t)})`
    : "";
}

$("#tally-undo").addEventListener("click", async () => {
  const reply = await conn.call(REQUEST.TALLY_UNDO, {});
  if (reply.ok) setCounts(reply.counts);
  else toast(`Nothing undone: ${describeError(reply.error)}`, "error");
});

// -- notes ---------------------------------------------------------------------

/** @type {Record<string, string>} */
const VISIBILITY_WORDS = { private: "only you", team: "coaching team", everyone: "everyone" };

function renderNotes() {
  $("#notes").replaceChildren(
    ...[...state.notes].reverse().map((n) => {
      const mine = n.by === vs.selfId || state.myNotes.has(n.id);
      return h(
        "li",
        { class: "note", dataset: { noteId: n.id, visibility: n.visibility } },
        h("span", { class: "note-time" }, clock(n.t)),
        " ",
        h("span", { class: "note-who" }, n.name || nameOf(n.by)),
        ": ",
        h("span", { class: "note-text" }, n.text),
        " ",
        h("span", { class: "note-visibility" }, VISIBILITY_WORDS[n.visibility] || n.visibility),
        mine && n.visibility === "private"
          ? h("button", {
              type: "button",
              class: "btn btn-small share-note",
              onclick: () => shareNote(n.id, "team"),
            }, "Share with the team")
          : null,
      );
    }),
  );
}

/** @param {Note} note */
function upsertNote(note) {
  const i = state.notes.findIndex((n) => n.id === note.id);
  if (i >= 0) state.notes[i] = note;
  else state.notes.push(note);
  renderNotes();
}

/**
 * @param {string} noteId
 * @param {Visibility} visibility
 */
async function shareNote(noteId, visibility) {
  const reply = await conn.call(REQUEST.NOTE_SHARE, { noteId, visibility });
  if (reply.ok) upsertNote(reply.note);
  else toast(`Not shared: ${describeError(reply.error)}`, "error");
}

async function addNote() {
  const box = $("#note-text", HTMLTextAreaElement);
  const text = box.value.trim();
  if (!text) return;
  const visibility = /** @type {Visibility} */ ($("#note-visibility", HTMLSelectElement).value);
  const reply = await conn.call(REQUEST.NOTE, { text, visibility });
  if (reply.ok) {
    box.value = "";
    state.myNotes.add(reply.note.id);
    upsertNote(reply.note);
  } else {
    toast(`Note not saved: ${describeError(reply.error)}`, "error");
  }
}

$("#note-form").addEventListener("submit", (e) => {
  e.preventDefault();
  addNote();
});
$("#note-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    addNote();
  }
});

// -- rendering -------------------------------------------------------------------

/** @type {Record<PttPhase, string>} */
const PTT_WORDS = {
  idle: "Hold to whisper",
  starting: "Connecting…",
  live: "● Live — release to stop",
  stopping: "Stopping…",
};
/** @type {Record<MicState, string>} */
const MIC_WORDS = {
  pending: "Asking for your microphone…",
  preview: "Speak: the bar moves with your voice. Nothing is sent until you join and hold Whisper.",
  connecting: "Connecting your microphone…",
  ready: "Microphone ready. Nothing is sent until you hold the button.",
  blocked: "Your microphone is blocked: allow it in the browser's site settings to whisper.",
  unavailable: "No microphone available: you can still send cues.",
  insecure: "",
};

/** @param {Phase} [p] the page's phase (viewer.js) */
function renderTools(p = viewer.phase()) {
  if (micReady() && state.mic === "connecting") state.mic = "ready";
  if (!micReady() && state.mic === "ready") state.mic = "connecting";
  // cues, tallies and notes need the server, not media: usable while joined
  const usable = conn.state === "joined" && !["ended", "failed"].includes(p);
  for (const el of $$(".tools button, .tools input, .tools select, .tools textarea")) {
    if (el.id === "ptt" || el.id === "enable-mic" || el.id === "join-screen-again") continue;
    if (el instanceof HTMLButtonElement || el instanceof HTMLInputElement ||
        el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) el.disabled = !usable;
  }
  const phase = state.ptt.phase;
  ptt.dataset.state = micReady() ? phase : "unavailable";
  ptt.disabled = !usable || (!micReady() && phase === "idle");
  ptt.setAttribute("aria-pressed", String(phase === "live" || phase === "starting"));
  ptt.textContent = PTT_WORDS[phase];
  $("#mic-state").textContent = MIC_WORDS[state.mic] || "";
  $("#enable-mic").hidden = !(state.mic === "blocked" || state.mic === "unavailable");
  $("#mic-state").dataset.mic = state.mic;
  const joinMic = $("#join-mic-state");
  joinMic.textContent = MIC_WORDS[state.mic] || "";
  joinMic.dataset.mic = state.mic;
  const banner = $("#whisper-banner");
  banner.hidden = phase !== "live";
  document.body.dataset.whisper = phase;
  const others = vs.whispering.filter((w) => w.participantId !== vs.selfId).map((w) => w.name || "A coach");
  $("#whispering-now").textContent = others.length
    ? `${others.join(", ")} ${others.length > 1 ? "are" : "is"} whispering`
    : "";
}

viewer.listeners.render.push(renderTools);
viewer.listeners.summary.push(() => {
  const taps = Object.values(state.counts).reduce((a, b) => a + b, 0);
  const mine = [...state.cues.values()].filter((c) => c.by === vs.selfId).length;
  return `“${vs.page.title}” is over. You sent ${plural(mine, "cue")}; the coaches counted ${taps === 1 ? "1 tally" : `${taps} tallies`}${state.notes.length ? ` and wrote ${plural(state.notes.length, "note")}` : ""}.`;
});
conn.onpublished = () => renderTools();

viewer.listeners.joined.push((reply, isRejoin) => {
  const c = reply.coaching || {};
  state.prompts = c.prompts || [];
  state.categories = c.tallyCategories || [];
  state.counts = c.counts || {};
  state.notes = c.notes || [];
  for (const n of state.notes) if (n.mine) state.myNotes.add(n.id);
  state.cues = new Map();
  for (const cue of c.cues || []) state.cues.set(cue.id, cue);
  if (isRejoin && state.ptt.phase !== "idle") {
    state.ptt = { held: false, phase: "idle" };
    if (state.whisperTrack) state.whisperTrack.enabled = false;
    toast("Whisper stopped: the connection dropped. Hold again to speak.", "error");
  }
  $("#tally-buttons").replaceChildren();
  renderPrompts();
  renderTallies();
  renderCueLog();
  renderNotes();
});

conn
  .on(EVENT.CUE_STATE, (cue) => mergeCue(cue))
  .on(EVENT.TALLY_COUNTS, (data) => {
    state.lastTally = data.last || null;
    setCounts(data.counts || {});
  })
  .on(EVENT.NOTE, (note) => upsertNote(note));

exposeHooks({
  ...viewer.baseHooks,
  counts: () => copy(state.counts),
  lastTally: () => copy(state.lastTally),
  cues: () => copy([...state.cues.values()]),
  notes: () => copy(state.notes),
  mic: () => state.mic,
  whisperPublished: () => Boolean(state.whisperPub?.published),
  ptt: () => state.ptt.phase,
  pttErrors: () => state.pttErrors,
  micDevice: () => state.micDevice,
  micTrackDevice: () => state.whisperTrack?.getSettings().deviceId ?? null,
});

viewer.start();
if (!vs.entered) takeMic(state.micDevice);
