// Small DOM helpers shared by the pages. User-provided text is only ever
// set with textContent, never parsed as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** h("button", {class: "x", onclick}, "text", child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") {
      // CSSOM, not a style attribute: the pages' CSP forbids inline styles
      for (const [prop, val] of Object.entries(v)) el.style.setProperty(prop, val);
    }
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Session-clock milliseconds as m:ss (or h:mm:ss). */
export function clock(ms) {
  if (ms == null) return "–";
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** A short message in the page's live region (announced by screen readers). */
export function toast(message, kind = "info", ms = 5000) {
  let region = $("#toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const el = h("div", { class: `toast toast-${kind}` }, message);
  region.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Human words for error codes the server sends. */
export function describeError(error) {
  const code = error?.code;
  const words = {
    offline: "You're offline right now; this will work again once reconnected.",
    timeout: "The server didn't answer in time. Please try again.",
    unknown_event: "This server doesn't support that yet.",
    rate_limited: "Too many taps at once; please wait a moment.",
    whisper_busy: "Another coach is whispering right now.",
    no_whisper_track: "Your microphone isn't connected yet.",
    forbidden: "Your role can't do that.",
    unauthorized: "This invite isn't valid.",
    token_expired: "This invite has expired.",
    session_ended: "This session has ended.",
    session_not_found: "This session no longer exists.",
    limit_reached: "The session is full.",
    server_draining: "The server is restarting; this page reconnects by itself.",
    recording_in_progress: "This recording is still being made.",
    not_recording: "The recording isn't running.",
    not_paused: "The recording isn't paused.",
  };
  return words[code] || error?.message || "Something went wrong.";
}

/** Define window.sidecoach: read-only getters for tests and debugging. */
export function exposeHooks(getters) {
  const hooks = {};
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(hooks, name, { get, enumerable: true });
  }
  Object.freeze(hooks);
  Object.defineProperty(window, "sidecoach", { value: hooks, writable: false });
  return hooks;
}

/** Connection state words and classes for the status banner. */
export const CONNECTION_WORDS = {
  idle: "Starting…",
  connecting: "Connecting…",
  joined: "Connected",
  reconnecting: "Reconnecting…",
  ended: "Session ended",
  failed: "Can't join",
  closed: "Left the session",
};

export const RECORDING_WORDS = {
  recording: "Recording",
  paused: "Recording paused",
  off: "Not recorded",
  error: "Recording problem",
  unknown: "Recording: unknown",
};

/** "1 coach", "2 coaches", "3 observers". */
export function plural(n, word) {
  if (n === 1) return `${n} ${word}`;
  return `${n} ${/(s|sh|ch|x|z)$/.test(word) ? `${word}es` : `${word}s`}`;
}

/** Show the connection state in the shared status bar elements. */
export function renderConnection(conn) {
  const el = $("#conn-state");
  if (el) {
    el.textContent = CONNECTION_WORDS[conn.state] || conn.state;
    el.dataset.state = conn.state;
    el.title = conn.detail || "";
  }
  const detail = $("#conn-detail");
  // an ended session has its own banner
  if (detail) detail.textContent = ["joined", "ended"].includes(conn.state) ? "" : conn.detail || "";
  const q = $("#conn-quality");
  if (q) {
    q.dataset.quality = conn.quality;
    q.textContent = conn.quality === "unknown" ? "" : `Connection: ${conn.quality}`;
  }
  document.body.dataset.conn = conn.state;
}

/**
 * Show the recording state on every `.recording-state` pill.
 * `rec` is the server's {state, planned, reason}; before anything is
 * recorded the pill says what will happen ("Will be recorded when ... goes
 * live" or "Not recorded"); once the session is over it is hidden: nothing
 * is being recorded any more. `whoGoesLive` words the plan for this page.
 */
export function renderRecording(rec, { ended = false, whoGoesLive = "the teacher goes" } = {}) {
  const state = rec?.state || "unknown";
  let words = RECORDING_WORDS[state] || state;
  let shown = state;
  if (state === "off" && rec?.planned) {
    words = `Will be recorded when ${whoGoesLive} live`;
    shown = "planned";
  }
  for (const el of $$(".recording-state")) {
    el.hidden = ended || state === "ended";
    el.dataset.state = shown;
    el.textContent = words;
    el.title = rec?.reason || "";
  }
}

/** Participants list ("who's here"), with who is whispering. */
export function renderPresence(listEl, participants, whispering, selfId) {
  if (!listEl) return;
  const talking = new Set((whispering || []).map((w) => w.participantId));
  listEl.replaceChildren(
    ...participants.map((p) =>
      h(
        "li",
        { class: `person role-${p.role}`, dataset: { id: p.id } },
        h("span", { class: "role-badge" }, p.role),
        " ",
        h("span", { class: "person-name" }, p.name || "(no name)"),
        p.id === selfId ? h("span", { class: "muted" }, " (you)") : null,
        talking.has(p.id) ? h("span", { class: "whisper-badge" }, " ● whispering") : null,
      ),
    ),
  );
}
