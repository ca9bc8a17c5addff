// The lobby / admin page: create sessions, share invite links (with a QR code
// for the teacher's phone), see live sessions and end them.

import qrcode from "/vendor/qrcode.mjs";
import { readPage } from "./conn.js";
import { ERROR } from "./protocol.js";
import { $, clock, errorText, exposeHooks, h, plural, toast } from "./ui.js";

/** @import { Invites, LiveSession, LobbyPage, SessionJson } from "../../types/wire" */

/**
 * One invite link shown: for whom (a named coach, or the role's link).
 * @typedef {{role: string, name: string, link: string}} InviteRow
 */

/** @type {LobbyPage} */
const page = readPage();
const TOKEN_KEY = "sidecoach.adminToken";
/** @type {Record<string, string>} */
const ROLE_WORDS = {
  teacher: "Teacher (the classroom device)",
  coach: "Coach",
  observer: "Observer",
};

const state = {
  /** @type {LiveSession[]} */
  sessions: [],
  /** the links shown, of one session @type {{session: SessionJson, rows: InviteRow[]} | null} */
  invites: null,
  /** @type {SessionJson | null} */
  created: null,
  /** @type {string | null} */
  listError: null,
};

// The admin token arrives once in the URL (?admin=...) and is then kept in
// this tab's sessionStorage only, and removed from the address bar.
const url = new URL(location.href);
const adminInUrl = url.searchParams.get("admin");
if (adminInUrl != null) {
  sessionStorage.setItem(TOKEN_KEY, adminInUrl);
  url.searchParams.delete("admin");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}
const token = () => sessionStorage.getItem(TOKEN_KEY);

/**
 * Call the admin API with this tab's token; throws an Error with the
 * server's message (and signs out on 401).
 * @param {"GET" | "POST"} method
 * @param {string} path
 * @param {object} [body] sent as JSON
 * @returns {Promise<any>} the JSON body
 */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token()}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  /** @type {any} */
  let data = {};
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401) {
    signOut(data.error?.code === ERROR.TOKEN_EXPIRED ? "Your admin token has expired." : "That admin token isn't valid.");
  }
  if (!res.ok) throw new Error(data.error?.message || `HTTP ${res.status}`);
  return data;
}

/** @param {boolean} signedIn */
function showSignedIn(signedIn) {
  $("#auth").hidden = signedIn;
  for (const id of ["#create", "#sessions"]) $(id).hidden = !signedIn;
  $("#forget-token").hidden = !signedIn;
  if (!signedIn) $("#invites").hidden = true;
}

/** @param {string} message why (or "") */
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignedIn(false);
  $("#auth-error").textContent = message || "";
  $("#admin-token").focus();
}

// -- QR code -----------------------------------------------------------------

/**
 * The QR code of `text` as an inline SVG (the CSP allows no data: scripts or canvases).
 * @param {string} text
 */
function qrSvg(text) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const margin = 4;
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + margin} ${r + margin}h1v1h-1z`;
    }
  }
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const size = n + margin * 2;
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code of the teacher's invite link");
  svg.setAttribute("shape-rendering", "crispEdges");
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", String(size));
  bg.setAttribute("height", String(size));
  bg.setAttribute("fill", "#fff");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(bg, path);
  return svg;
}

// -- invites -------------------------------------------------------------------

/** Invite links carry the server's configured base URL. When that is only a
 * loopback default (no public URL configured), the address this page was
 * opened with is a better guess for other devices.
 * @param {string} link
 */
function reachable(link) {
  try {
    const u = new URL(link);
    const loopback = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"].includes(u.hostname);
    if ((loopback || u.port === "0") && u.origin !== location.origin) {
      return location.origin + u.pathname + u.search;
    }
  } catch {
    /* keep the link as it is */
  }
  return link;
}

/**
 * One invite row: who it is for, the link, copy and open.
 * @param {InviteRow} row
 * @param {number} i
 */
function inviteRow({ role, name, link }, i) {
  const id = `invite-${role}-${i}`;
  const label = name ? `${ROLE_WORDS[role] || role}: ${name}` : ROLE_WORDS[role] || role;
  return h(
    "div",
    { class: "invite", dataset: { role, name: name || "" } },
    h("label", { for: id }, label),
    h(
      "div",
      { class: "invite-row" },
      h("input", { id, type: "text", readonly: true, value: link, class: "invite-url" }),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-small",
          onclick: async () => {
            try {
              await navigator.clipboard.writeText(link);
              toast(`${label} link copied.`);
            } catch {
              $(`#${id}`, HTMLInputElement).select();
              toast("Press Ctrl+C (⌘C) to copy the selected link.");
            }
          },
        },
        "Copy",
      ),
      h("a", { class: "btn btn-small", href: link, target: "_blank", rel: "noopener noreferrer" }, "Open"),
    ),
  );
}

function renderInvites() {
  if (!state.invites) return;
  const { session, rows } = state.invites;
  $("#invites").hidden = false;
  $("#invites-for").textContent = `For “${session.title}” with ${session.teacher_name}. Each link is for one person: share it only with them. Name each coach so the teacher knows who is whispering.`;
  $("#invite-list").replaceChildren(...rows.map(inviteRow));
  const teacher = rows.find((r) => r.role === "teacher");
  $("#qr").replaceChildren(teacher ? qrSvg(teacher.link) : "");
}

/** Show a session's links: the teacher's, one per named coach (or an
 * unnamed coach link when none are named yet), the observer's.
 * @param {SessionJson} session
 * @param {Invites} rawInvites role -> link
 * @param {InviteRow[]} [named] links made for named people
 */
function showInvites(session, rawInvites, named = []) {
  /** @type {InviteRow[]} */
  const rows = [];
  for (const [role, link] of Object.entries(rawInvites)) {
    if (role === "coach" && named.some((n) => n.role === "coach")) continue;
    rows.push({ role, name: role === "teacher" ? session.teacher_name : "", link: reachable(link) });
  }
  for (const n of named) rows.push({ ...n, link: reachable(n.link) });
  state.invites = { session, rows };
  renderInvites();
  $("#invites").scrollIntoView({ block: "nearest" });
}

/**
 * A link for one named person.
 * @param {SessionJson} session
 * @param {string} role
 * @param {string} name
 * @returns {Promise<InviteRow>}
 */
async function addNamedInvite(session, role, name) {
  const data = await api("POST", `/api/sessions/${encodeURIComponent(session.id)}/invites`, { role, name });
  return { role, name, link: data.url };
}

// -- sessions ------------------------------------------------------------------

/**
 * The non-blank lines of a textarea.
 * @param {string} text
 */
function lines(text) {
  return text
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** @param {SubmitEvent} e */
async function createSession(e) {
  e.preventDefault();
  $("#create-error").textContent = "";
  const body = {
    title: $("#title", HTMLInputElement).value.trim(),
    teacher_name: $("#teacher-name", HTMLInputElement).value.trim(),
    settings: {
      recording: $("#recording", HTMLInputElement).checked,
      whisper_single: $("#whisper-single", HTMLInputElement).checked,
      prompts: lines($("#prompts", HTMLTextAreaElement).value),
      tally_categories: lines($("#tallies", HTMLTextAreaElement).value),
    },
  };
  try {
    /** @type {{session: SessionJson, invites: Invites}} */
    const data = await api("POST", "/api/sessions", body);
    state.created = data.session;
    const named = [];
    for (const name of lines($("#coach-names", HTMLTextAreaElement).value)) {
      named.push(await addNamedInvite(data.session, "coach", name));
    }
    showInvites(data.session, data.invites, named);
    toast(`Session “${data.session.title}” created.`);
    await refresh();
  } catch (err) {
    $("#create-error").textContent = `Couldn't create the session: ${errorText(err)}`;
  }
}

async function refresh() {
  if (!token()) return;
  try {
    const data = await api("GET", "/api/sessions?state=live,scheduled");
    state.sessions = data.sessions;
    state.listError = null;
  } catch (err) {
    state.listError = errorText(err);
  }
  renderSessions();
}

/**
 * The session's state in the list: LIVE only while the classroom's media is
 * on (a teacher who went live), never because someone opened a link.
 * @param {LiveSession} s
 * @returns {{badge: string, words: string}}
 */
function summary(s) {
  const live = s.live;
  if (s.state === "scheduled") return { badge: "upcoming", words: "not started" };
  const people = Object.entries(live?.participants || {})
    .map(([role, n]) => plural(n, role))
    .join(", ");
  if (live && (live.classroom_tracks ?? 0) > 0) {
    return { badge: "live", words: `${people} · ${clock(live.clock_ms)}` };
  }
  return {
    badge: "open",
    words: people ? `${people} connected · not live yet` : "no one connected · not live",
  };
}

function renderSessions() {
  const list = $("#session-list");
  if (state.listError) {
    list.replaceChildren(h("li", { class: "form-error" }, `Couldn't load sessions: ${state.listError}`));
    return;
  }
  if (!state.sessions.length) {
    list.replaceChildren(h("li", { class: "muted" }, "No live or upcoming sessions."));
    return;
  }
  list.replaceChildren(
    ...state.sessions.map((s) => {
      const { badge, words } = summary(s);
      return h(
        "li",
        { class: "session-item", dataset: { sessionId: s.id, state: s.state, badge } },
        h("span", { class: `state-badge state-${badge}` }, badge),
        h("span", { class: "session-name" }, s.title),
        h("span", { class: "muted session-words" }, ` · ${s.teacher_name} · ${words}`),
        h(
          "span",
          { class: "session-actions" },
          h(
            "button",
            {
              type: "button",
              class: "btn btn-small",
              onclick: async () => {
                try {
                  const data = await api("GET", `/api/sessions/${encodeURIComponent(s.id)}`);
                  showInvites(data.session, data.invites);
                } catch (err) {
                  toast(`Couldn't get links: ${errorText(err)}`, "error");
                }
              },
            },
            "Invite links",
          ),
          h(
            "button",
            {
              type: "button",
              class: "btn btn-small btn-danger",
              onclick: async () => {
                if (!confirm(`End “${s.title}” for everyone now?`)) return;
                try {
                  await api("POST", `/api/sessions/${encodeURIComponent(s.id)}/end`);
                  toast(`“${s.title}” has ended.`);
                  if (state.invites?.session.id === s.id) $("#invites").hidden = true;
                } catch (err) {
                  toast(`Couldn't end it: ${errorText(err)}`, "error");
                }
                await refresh();
              },
            },
            "End",
          ),
        ),
      );
    }),
  );
}

// -- wiring ----------------------------------------------------------------------

$("#prompts", HTMLTextAreaElement).value = (page.defaults?.prompts || []).join("\n");
$("#tallies", HTMLTextAreaElement).value = (page.defaults?.tallyCategories || []).join("\n");
$("#create-form").addEventListener("submit", createSession);
$("#add-invite-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("#invite-name", HTMLInputElement).value.trim();
  const role = $("#invite-role", HTMLSelectElement).value;
  const invites = state.invites;
  if (!invites || !name) return;
  try {
    const row = await addNamedInvite(invites.session, role, name);
    invites.rows.push({ ...row, link: reachable(row.link) });
    $("#invite-name", HTMLInputElement).value = "";
    renderInvites();
    toast(`Link for ${name} added.`);
  } catch (err) {
    toast(`Couldn't make that link: ${errorText(err)}`, "error");
  }
});
$("#refresh").addEventListener("click", refresh);
$("#forget-token").addEventListener("click", () => signOut(""));
$("#auth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("#admin-token", HTMLInputElement);
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  $("#auth-error").textContent = "";
  showSignedIn(true);
  await refresh();
});

exposeHooks({
  role: () => "admin",
  signedIn: () => Boolean(token()),
  sessions: () => structuredClone(state.sessions),
  invites: () =>
    state.invites
      ? Object.fromEntries(state.invites.rows.map((r) => [r.name && r.role !== "teacher" ? `${r.role}:${r.name}` : r.role, r.link]))
      : null,
  created: () => (state.created ? structuredClone(state.created) : null),
});

showSignedIn(Boolean(token()));
if (token()) refresh();
setInterval(() => document.visibilityState === "visible" && refresh(), 5000);
