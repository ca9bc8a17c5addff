// The coach's page: watch and hear the classroom; push-to-talk whisper; cues
// with delivery/ack state; shared tallies with undo; notes.

import { $, clock, describeError, exposeHooks, h, toast } from "./ui.js";
import { startViewer } from "./viewer.js";

const viewer = startViewer({ role: "coach" });
const { conn, state: vs, copy } = viewer;

const state = {
  prompts: [],
  categories: [],
  counts: {},
  lastTally: null,
  cues: new Map(), // id -> cue (latest state)
  notes: [],
  myNotes: new Set(), // ids of notes this page wrote
  mic: "pending", // pending | ready | blocked | unavailable
  whisperTrack: null,
  whisperPub: null,
  ptt: { held: false, phase: "idle" }, // idle | starting | live | stopping
  pttErrors: 0,
};

const nameOf = (id) => vs.participants.get(id)?.name || "a coach";

// -- whisper (push-to-talk) ----------------------------------------------------

async function enableMic() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const track = stream.getAudioTracks()[0];
    // Nothing from this microphone leaves the laptop until the button is held;
    // the server also forwards the whisper only while held.
    track.enabled = false;
    state.whisperTrack = track;
    state.mic = "connecting";
    const r = await conn.publish("whisper", "audio", track);
    if (r.ok) {
      state.whisperPub = r.pub;
    } else {
      state.mic = "unavailable";
      toast(`Whisper microphone: ${describeError(r.error)}`, "error");
    }
  } catch (err) {
    state.mic = err?.name === "NotAllowedError" ? "blocked" : "unavailable";
  }
  renderTools();
}

function micReady() {
  return Boolean(state.whisperPub?.published) && conn.state === "joined";
}

async function pressTalk() {
  if (state.ptt.held) return;
  state.ptt.held = true;
  if (!micReady()) {
    state.ptt.held = false;
    toast(describeError({ code: "no_whisper_track" }), "error");
    return;
  }
  state.whisperTrack.enabled = true;
  state.ptt.phase = "starting";
  renderTools();
  const reply = await conn.call("whisper-start", {});
  if (!reply.ok) {
    state.ptt.held = false;
    state.ptt.phase = "idle";
    state.whisperTrack.enabled = false;
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
  await conn.call("whisper-stop", {});
  state.ptt.phase = "idle";
  renderTools();
}

function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  return tag === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(target.type);
}

const ptt = $("#ptt");
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

async function sendCue(msg) {
  const reply = await conn.call("cue", msg);
  if (!reply.ok) {
    toast(`Cue not sent: ${describeError(reply.error)}`, "error");
    return false;
  }
  mergeCue(reply.cue);
  return true;
}

function mergeCue(cue) {
  const prev = state.cues.get(cue.id) || {};
  const order = { sent: 0, delivered: 1, acknowledged: 2 };
  const merged = { ...prev, ...cue };
  if (prev.state && order[prev.state] > order[cue.state]) merged.state = prev.state;
  state.cues.set(cue.id, merged);
  renderCueLog();
}

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
            sendCue({ promptIndex: i, color: $("#cue-color").value, tone: $("#cue-tone").checked }),
        },
        text,
      ),
    ),
  );
}

$("#cue-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#cue-text");
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  const msg = { text, color: $("#cue-color").value, tone: $("#cue-tone").checked };
  if ($("#cue-icon").value) msg.icon = $("#cue-icon").value;
  if (await sendCue(msg)) input.value = "";
});

// -- tallies -------------------------------------------------------------------

async function tally(category) {
  const reply = await conn.call("tally", { category });
  if (reply.ok) setCounts(reply.counts);
  else toast(`Tally not counted: ${describeError(reply.error)}`, "error");
}

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
    btn.querySelector(".tally-count").textContent = String(state.counts[btn.dataset.category] ?? 0);
  }
  const last = state.lastTally;
  $("#tally-last").textContent = last
    ? `${last.undo ? "Undid" : "+1"} ${last.category} (${nameOf(last.by)}, ${clock(last.t)})`
    : "";
}

$("#tally-undo").addEventListener("click", async () => {
  const reply = await conn.call("tally-undo", {});
  if (reply.ok) setCounts(reply.counts);
  else toast(`Nothing undone: ${describeError(reply.error)}`, "error");
});

// -- notes ---------------------------------------------------------------------

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

function upsertNote(note) {
  const i = state.notes.findIndex((n) => n.id === note.id);
  if (i >= 0) state.notes[i] = note;
  else state.notes.push(note);
  renderNotes();
}

async function shareNote(noteId, visibility) {
  const reply = await conn.call("note-share", { noteId, visibility });
  if (reply.ok) upsertNote(reply.note);
  else toast(`Not shared: ${describeError(reply.error)}`, "error");
}

async function addNote() {
  const box = $("#note-text");
  const text = box.value.trim();
  if (!text) return;
  const visibility = $("#note-visibility").value;
  const reply = await conn.call("note", { text, visibility });
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

const PTT_WORDS = {
  idle: "Hold to whisper",
  starting: "Connecting…",
  live: "● Live — release to stop",
  stopping: "Stopping…",
};
const MIC_WORDS = {
  pending: "Asking for your microphone…",
  connecting: "Connecting your microphone…",
  ready: "Microphone ready. Nothing is sent until you hold the button.",
  blocked: "Your microphone is blocked: allow it in the browser's site settings to whisper.",
  unavailable: "No microphone available: you can still send cues.",
};

function renderTools() {
  if (state.whisperPub?.published && state.mic === "connecting") state.mic = "ready";
  if (!state.whisperPub?.published && state.mic === "ready") state.mic = "connecting";
  const phase = state.ptt.phase;
  ptt.dataset.state = micReady() ? phase : "unavailable";
  ptt.disabled = !micReady() && phase === "idle";
  ptt.setAttribute("aria-pressed", String(phase === "live" || phase === "starting"));
  ptt.textContent = PTT_WORDS[phase];
  $("#mic-state").textContent = MIC_WORDS[state.mic] || "";
  $("#enable-mic").hidden = !(state.mic === "blocked" || state.mic === "unavailable");
  const banner = $("#whisper-banner");
  banner.hidden = phase !== "live";
  document.body.dataset.whisper = phase;
  const others = vs.whispering.filter((w) => w.participantId !== vs.selfId).map((w) => w.name || "A coach");
  $("#whispering-now").textContent = others.length
    ? `${others.join(", ")} ${others.length > 1 ? "are" : "is"} whispering`
    : "";
}

viewer.listeners.render.push(renderTools);
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
  .on("cue-state", (cue) => mergeCue(cue))
  .on("tally-counts", (data) => {
    state.lastTally = data.last || null;
    setCounts(data.counts || {});
  })
  .on("note", (note) => upsertNote(note));

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
});

viewer.render();
conn.start();
enableMic();
