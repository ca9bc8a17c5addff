// After the lesson: its recordings as this invite may see them. The teacher
// can delete a recording and see who watched it. Shown on the teacher page
// once the session ends and on the page an invite opens afterwards.

import { errorText, h, lengthWords } from "./ui.js";

/** @import { AuditEntry, HttpError, Permissions, RecordingRow, Role } from "../../types/wire" */

/**
 * Who is looking: the invite's token and role, and how long recordings are kept.
 * @typedef {{token: string, role: Role, retentionDays: number}} AfterContext
 */

/** A recording still being saved is looked at again this often, this many times. */
const SAVING_LOOK_MS = 2000;
const SAVING_LOOKS = 30;

/** @param {number} unixSeconds */
function when(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString([], {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

/** @param {number} unixSeconds */
function day(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleDateString([], { dateStyle: "medium" });
}

/**
 * Call the HTTP API with the invite's token; throws an Error with the server's message.
 * @param {string} token
 * @param {"GET" | "DELETE"} method
 * @param {string} path
 * @returns {Promise<any>} the JSON body
 */
async function api(token, method, path) {
  const r = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` } });
  /** @type {(HttpError & Record<string, unknown>) | null} */
  let body = null;
  try {
    body = await r.json();
  } catch {
    /* no JSON body */
  }
  if (!r.ok) throw new Error(body?.error?.message || `HTTP ${r.status}`);
  return body;
}

/**
 * Who read a recording, one line per person: name, role, when, how much.
 * @param {AuditEntry[]} entries
 */
function watchers(entries) {
  /** @type {Map<string, {who: string, role: string, first: number, last: number, bytes: number}>} */
  const byWho = new Map();
  for (const e of entries) {
    if (e.action === "delete") continue;
    const who = e.who?.admin ? "An administrator" : e.who?.name || e.who?.role || "someone";
    const role = e.who?.admin ? "admin" : e.who?.role || "";
    const key = `${who}|${role}`;
    const seen = byWho.get(key) || { who, role, first: e.at, last: e.at, bytes: 0 };
    seen.first = Math.min(seen.first, e.at);
    seen.last = Math.max(seen.last, e.at);
    seen.bytes += e.bytes || 0;
    byWho.set(key, seen);
  }
  return [...byWho.values()].sort((a, b) => b.last - a.last);
}

/**
 * @param {RecordingRow} rec
 * @param {AfterContext} ctx
 * @param {Permissions} perms what this reader may do (from the server's policy)
 * @param {() => Promise<void>} refresh
 */
function recordingCard(rec, ctx, perms, refresh) {
  const keptUntil = rec.started_at + ctx.retentionDays * 86400;
  const status = h("p", { class: "hint", role: "status" });
  const watched = h("ul", { class: "watchers", hidden: true });
  const actions = h("div", { class: "after-actions" });
  const card = h(
    "article",
    { class: "recording-card", dataset: { recordingId: rec.id } },
    h("h3", {}, `Recorded ${when(rec.started_at)}`),
    h(
      "p",
      {},
      `${rec.state === "recording" ? "Still being saved" : lengthWords(rec.duration_ms)} · kept until ${day(keptUntil)}, then deleted automatically`,
    ),
    actions,
    status,
    watched,
  );
  const review = `/review/${encodeURIComponent(rec.id)}?token=${encodeURIComponent(ctx.token)}`;
  actions.append(h("a", { class: "btn btn-primary btn-small review-link", href: review }, "Review it"));
  if (perms.debrief) {
    actions.append(h("a", { class: "btn btn-small", href: `${review}#debrief-panel` }, "Start a debrief"));
  }
  if (perms.delete) {
    const del = h("button", { type: "button", class: "btn btn-danger btn-small delete-recording" }, "Delete this recording");
    const sure = h("span", { class: "confirm-inline", hidden: true },
      "Delete it for everyone, for good? ",
      h("button", {
        type: "button",
        class: "btn btn-danger btn-small confirm-delete",
        onclick: async () => {
          try {
            await api(ctx.token, "DELETE", `/api/recordings/${encodeURIComponent(rec.id)}`);
            status.textContent = "Deleted.";
            await refresh();
          } catch (err) {
            status.textContent = `Couldn't delete it: ${errorText(err)}`;
          }
        },
      }, "Delete forever"),
      h("button", { type: "button", class: "btn btn-small", onclick: () => {
        sure.hidden = true;
        del.hidden = false;
      } }, "Keep it"),
    );
    del.addEventListener("click", () => {
      del.hidden = true;
      sure.hidden = false;
    });
    actions.append(del, sure);
  }
  if (perms.audit) {
    const who = h("button", {
      type: "button",
      class: "btn btn-small show-watchers",
      onclick: async () => {
        try {
          const data = await api(ctx.token, "GET", `/api/recordings/${encodeURIComponent(rec.id)}/audit`);
          const people = watchers(data.entries || []);
          watched.replaceChildren(
            ...(people.length
              ? people.map((p) =>
                  h("li", { class: "watcher" },
                    h("strong", {}, p.who), p.role ? ` (${p.role})` : "",
                    ` · ${when(p.last)}`,
                    p.bytes ? ` · ${(p.bytes / 1e6).toFixed(1)} MB` : ""))
              : [h("li", { class: "muted" }, "Nobody has watched it yet.")]),
          );
          watched.hidden = false;
        } catch (err) {
          status.textContent = `Couldn't load who watched: ${errorText(err)}`;
        }
      },
    }, "Who watched it");
    actions.append(who);
  }
  return card;
}

/**
 * Fill `container` with the lesson's recordings for this invite.
 * @param {HTMLElement} container
 * @param {AfterContext} ctx
 * @returns {Promise<() => Promise<void>>} refresh: load them again
 */
export async function showAfter(container, ctx) {
  container.hidden = false;
  const list = h("div", { class: "recording-list" });
  container.replaceChildren(
    h("h2", {}, ctx.role === "teacher" ? "Your lesson's recordings" : "The lesson's recordings"),
    h("p", { class: "hint" },
      `Recordings stay on your district's server and are deleted after ${ctx.retentionDays} days.`),
    list,
  );
  let looks = 0;
  const refresh = async () => {
    try {
      const data = await api(ctx.token, "GET", "/api/recordings");
      /** @type {RecordingRow[]} */
      const recs = data.recordings || [];
      // a recording still being saved: look again until it has its length (bounded)
      if (recs.some((r) => r.state === "recording") && looks < SAVING_LOOKS) {
        looks += 1;
        setTimeout(refresh, SAVING_LOOK_MS);
      }
      list.replaceChildren(
        ...(recs.length
          ? recs.map((r) => recordingCard(r, ctx, data.permissions || {}, refresh))
          : [h("p", { class: "no-recordings" }, "This lesson has no recordings.")]),
      );
    } catch (err) {
      list.replaceChildren(h("p", { class: "form-error" }, `Couldn't load the recordings: ${errorText(err)}`));
    }
  };
  await refresh();
  return refresh;
}
