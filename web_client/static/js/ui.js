// Small DOM helpers shared by the pages. User-provided text is only ever
// set with textContent, never parsed as HTML.

import { ERROR } from "./protocol.js";

/** @import { Participant, WireError, Whisperer } from "../../types/wire" */
/** @import { ErrorCode } from "./protocol.js" */

/**
 * The element of the page's template that matches `selector`, checked to be
 * a `type` (HTMLElement unless said otherwise): throws, naming the selector,
 * when the template has no such element. For one that may be absent: $maybe.
 * @template {Element} [T=HTMLElement]
 * @param {string} selector
 * @param {new (...args: any[]) => T} [type]
 * @returns {T}
 */
export function $(selector, type) {
  const el = $maybe(selector, type);
  if (!el) throw new Error(`sidecoach: the page has no ${selector}`);
  return el;
}

/**
 * The element that matches `selector`, or null when there is none; throws
 * if it is not a `type` (HTMLElement unless said otherwise).
 * @template {Element} [T=HTMLElement]
 * @param {string} selector
 * @param {new (...args: any[]) => T} [type]
 * @returns {T | null}
 */
export function $maybe(selector, type) {
  const el = document.querySelector(selector);
  const want = type ?? /** @type {new (...args: any[]) => T} */ (/** @type {unknown} */ (HTMLElement));
  if (el && !(el instanceof want)) throw new Error(`sidecoach: ${selector} is not a ${want.name}`);
  return /** @type {T | null} */ (el);
}

/**
 * Every HTML element that matches `selector`.
 * @param {string} selector
 * @returns {HTMLElement[]}
 */
export const $$ = (selector) => [...document.querySelectorAll(selector)].filter((el) => el instanceof HTMLElement);

/**
 * A child of h(): a node, text, or nothing (null/false are skipped); arrays are flattened.
 * @typedef {Node | string | number | null | undefined | false | Child[]} Child
 */

/**
 * `h("button", {class: "x", onclick}, "text", child...)`: an element with
 * attributes (`on*` functions become listeners; `class`, `dataset`, `style`
 * as CSSOM properties; true: present, null/false: absent) and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
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
  for (const c of /** @type {unknown[]} */ (children).flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * Session-clock milliseconds as m:ss (or h:mm:ss); "–" for none.
 * @param {number | null | undefined} ms
 */
export function clock(ms) {
  if (ms == null) return "–";
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/**
 * Session-clock ms on a lesson's clock whose 0:00 is `startMs` (Go live):
 * "1:05", "1:02:05", and before it "-0:12" (review, debrief, exports alike).
 * @param {number} ms
 * @param {number} startMs
 */
export function lessonClock(ms, startMs) {
  const delta = ms - startMs;
  // whole seconds towards zero, as the server's exports count them
  const sign = delta <= -1000 ? "-" : "";
  return sign + clock(Math.abs(delta));
}

/**
 * How long something lasts (a recording, a lesson), the same words on every
 * page: "45 s", "3 min 20 s", "23 min", "1 h 05 min"; "–" for none.
 * @param {number | null | undefined} ms
 */
export function lengthWords(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const total = Math.round(s / 60);
  if (total < 60) return `${total} min`;
  return `${Math.floor(total / 60)} h ${String(total % 60).padStart(2, "0")} min`;
}

/**
 * A short message in the page's live region (announced by screen readers).
 * @param {string} message
 * @param {"info" | "error"} [kind]
 * @param {number} [ms] how long it stays
 */
export function toast(message, kind = "info", ms = 5000) {
  let region = $maybe("#toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const el = h("div", { class: `toast toast-${kind}` }, message);
  region.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Human words for the error codes a page may see; @type {Partial<Record<ErrorCode, string>>} */
const ERROR_WORDS = {
  [ERROR.OFFLINE]: "You're offline right now; this will work again once reconnected.",
  [ERROR.TIMEOUT]: "The server didn't answer in time. Please try again.",
  [ERROR.UNKNOWN_EVENT]: "This server doesn't support that yet.",
  [ERROR.RATE_LIMITED]: "Too many taps at once; please wait a moment.",
  [ERROR.WHISPER_BUSY]: "Another coach is whispering right now.",
  [ERROR.NO_WHISPER_TRACK]: "Your microphone isn't connected yet.",
  [ERROR.FORBIDDEN]: "Your role can't do that.",
  [ERROR.UNAUTHORIZED]: "This invite isn't valid.",
  [ERROR.TOKEN_EXPIRED]: "This invite has expired.",
  [ERROR.SESSION_ENDED]: "This session has ended.",
  [ERROR.SESSION_NOT_FOUND]: "This session no longer exists.",
  [ERROR.LIMIT_REACHED]: "The session is full.",
  [ERROR.SERVER_DRAINING]: "The server is restarting; this page reconnects by itself.",
  [ERROR.RECORDING_IN_PROGRESS]: "This recording is still being made.",
  [ERROR.NOT_RECORDING]: "The recording isn't running.",
  [ERROR.NOT_PAUSED]: "The recording isn't paused.",
};

/**
 * Human words for an error the server (or the Connection) reported.
 * @param {Partial<WireError> | null | undefined} error
 */
export function describeError(error) {
  const code = error?.code;
  return (code && ERROR_WORDS[code]) || error?.message || "Something went wrong.";
}

/**
 * Is the user typing into `target` (so a key is text, not a shortcut)?
 * @param {EventTarget | null} target
 */
export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  return target instanceof HTMLInputElement && !["checkbox", "radio", "button", "submit"].includes(target.type);
}

/**
 * The message of something thrown: an Error's (DOMExceptions are Errors), else its text.
 * @param {unknown} err
 */
export function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A deep copy for the test hooks (null and undefined as they are).
 * @template T
 * @param {T} x
 * @returns {T}
 */
export const copy = (x) => (x == null ? x : structuredClone(x));

/**
 * Define window.sidecoach: read-only getters for tests and debugging.
 * @param {Record<string, () => unknown>} getters
 */
export function exposeHooks(getters) {
  const hooks = {};
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(hooks, name, { get, enumerable: true });
  }
  Object.freeze(hooks);
  Object.defineProperty(window, "sidecoach", { value: hooks, writable: false });
  return hooks;
}

/** Recording state words for the recording pill; @type {Record<string, string>} */
export const RECORDING_WORDS = {
  recording: "Recording",
  paused: "Recording paused",
  off: "Not recorded",
  error: "Recording problem",
  unknown: "Recording: unknown",
};

/**
 * "1 coach", "2 coaches", "3 observers".
 * @param {number} n
 * @param {string} word
 */
export function plural(n, word) {
  if (n === 1) return `${n} ${word}`;
  return `${n} ${/(s|sh|ch|x|z)$/.test(word) ? `${word}es` : `${word}s`}`;
}

/**
 * Participants list ("who's here"), with who is whispering.
 * @param {HTMLElement | null} listEl
 * @param {Participant[]} participants
 * @param {Whisperer[] | null} whispering
 * @param {string | null} selfId
 */
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
