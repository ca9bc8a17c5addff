// The review timeline: the lesson's lanes (cues, whispers, each tally
// category, notes, comments, joins and leaves) on the lesson's clock, 0:00
// at Go live. The minutes before Go live are collapsed behind one button
// and can be opened. Marks closer than a finger's width are grouped into one
// mark with a count; every mark is large enough to tap. Drawn for the width
// it has: the player draws it again when that changes.

import { h } from "./ui.js";

/** @import { Timeline } from "../../types/wire" */
/** @import { Review } from "./review_core.js" */

/** Marks closer than this (px) become one group: a fingertip on a touch screen. */
const GROUP_PX_TOUCH = 28;
const GROUP_PX_MOUSE = 14;
/** Pre-live time shorter than this is not worth a button. */
const PRELIVE_MIN_MS = 1000;

const CUE_WORDS = { sent: "sent", delivered: "on the teacher's screen", acknowledged: "seen by the teacher" };

/** @param {Timeline["cues"][number]} c */
function cueState(c) {
  if (c.acknowledged_t != null) return "acknowledged";
  if (c.delivered_t != null) return "delivered";
  return "sent";
}

/** A touch screen (no hover, a coarse pointer): bigger marks, wider groups. */
export const isTouch = () => matchMedia("(hover: none), (pointer: coarse)").matches;

/**
 * One point on a lane: when, its class, and what it says.
 * @typedef {{t: number, cls: string, label: string}} Point
 */

/**
 * Draw the lesson's lanes into ``container``; returns {setTime(ms)} to move
 * the playhead. ``onSeek(ms)`` is called when a mark or a lane is tapped;
 * ``onPrelive(open)`` when the pre-live button is.
 * @param {HTMLElement} container
 * @param {Review} review
 * @param {{onSeek: (ms: number) => void, prelive: boolean, onPrelive: (open: boolean) => void}} opts
 * @returns {{setTime(ms: number): void}}
 */
export function renderTimeline(container, review, { onSeek, prelive, onPrelive }) {
  const lessonStart = review.lessonStart;
  const first = review.firstMs;
  const [, end] = review.span;
  const hasPrelive = lessonStart - first >= PRELIVE_MIN_MS;
  const open = prelive && hasPrelive;
  const start = open ? first : lessonStart;
  /** @type {Partial<Timeline>} */
  const tl = review.timeline || {};
  const perms = review.view?.permissions;
  const at = (/** @type {number} */ t) => review.at(t);
  const pct = (/** @type {number} */ t) => Math.min(100, Math.max(0, ((t - start) / (end - start)) * 100));
  const shown = (/** @type {number} */ t) => t >= start;
  /** @param {number} a @param {number} b */
  const spanStyle = (a, b) => ({ "--x": pct(a).toFixed(3), "--w": Math.max(0.4, pct(b) - pct(a)).toFixed(3) });

  /** @type {[string, string, Point[]][]} name, key, points */
  const rows = [];
  if (perms?.cues) {
    rows.push(["Cues", "cues", (tl.cues || []).map((c) => ({
      t: c.t,
      cls: `mark-cue cue-${cueState(c)}`,
      label: `Cue “${c.text}”${c.by ? ` from ${c.by}` : ""}: ${CUE_WORDS[cueState(c)]}`,
    }))]);
  }
  const whispers = perms?.whispers ? tl.whispers || [] : [];
  for (const category of tl.tally_categories || []) {
    rows.push([category, `tally-${category}`, (tl.tallies || []).filter((x) => x.category === category).map((x) => ({
      t: x.t, cls: "mark-tally", label: `${category}${x.name ? ` (${x.name})` : ""}`,
    }))]);
  }
  const notes = tl.notes || [];
  if (notes.length) {
    rows.push(["Notes", "notes", notes.map((n) => ({ t: n.t, cls: "mark-note", label: `Note by ${n.name}: ${n.text}` }))]);
  }
  rows.push(["Comments", "comments", review.comments.filter((c) => !c.parent).map((c) => ({
    t: c.t, cls: "mark-comment", label: `${c.name}: ${c.text}`,
  }))]);
  const presence = tl.presence || [];
  if (perms?.presence && presence.length) {
    rows.push(["Joins & leaves", "presence", presence.map((p) => ({
      t: p.t, cls: `mark-${p.type}`, label: `${p.name} (${p.role}) ${p.type === "join" ? "joined" : "left"}`,
    }))]);
  }

  /** @param {string} name @param {string} key */
  const laneOf = (name, key) => {
    const track = h("div", {
      class: "lane-track",
      onclick: (/** @type {MouseEvent} */ e) => {
        const box = track.getBoundingClientRect();
        onSeek(start + ((e.clientX - box.left) / box.width) * (end - start));
      },
    });
    return { el: h("div", { class: "lane", dataset: { lane: key } }, h("span", { class: "lane-name", title: name }, name), track), track };
  };
  const lanes = [];
  const body = h("div", { class: "timeline-body" });
  if (perms?.whispers) {
    const { el, track } = laneOf("Whispers", "whispers");
    track.append(...whispers.filter((w) => shown(w.end ?? w.start)).map((w) =>
      h("button", {
        type: "button",
        class: "span span-whisper",
        style: spanStyle(Math.max(start, w.start), w.end ?? w.start + 1000),
        dataset: { t: String(w.start) },
        "aria-label": `${w.name || "A coach"} whispered at ${at(w.start)}`,
        title: `${at(w.start)} · ${w.name || "a coach"} whispers`,
        onclick: (/** @type {MouseEvent} */ e) => {
          e.stopPropagation();
          onSeek(w.start);
        },
      })));
    lanes.push({ el, track, points: /** @type {Point[]} */ ([]) });
  }
  for (const [name, key, points] of rows) lanes.push({ ...laneOf(name, key), points: points.filter((p) => shown(p.t)) });
  body.append(...lanes.map((l) => l.el));
  const overlay = h("div", { class: "timeline-overlay" });
  body.append(overlay);
  const scale = h("div", { class: "timeline-scale" },
    ...[0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: { "--x": String(f * 100) } }, at(start + f * (end - start)))));
  const before = [...rows.flatMap((r) => r[2]), ...whispers.map((w) => ({ t: w.start }))].filter((p) => p.t < lessonStart).length;
  const toggle = hasPrelive
    ? h("button", {
        type: "button",
        class: "btn btn-small prelive-toggle",
        "aria-expanded": String(open),
        onclick: () => onPrelive(!open),
      }, open
        ? "Hide the time before going live"
        : `Before going live: ${lengthWordsShort(lessonStart - first)}${before ? `, ${before === 1 ? "1 mark" : `${before} marks`}` : ""} (show)`)
    : null;
  container.replaceChildren(...(toggle ? [toggle] : []), body, scale);
  container.dataset.start = String(start);
  container.dataset.end = String(end);
  container.dataset.prelive = String(open);

  // now the lanes have their width: place the marks, grouped by distance
  const width = lanes[0]?.track.clientWidth || 300;
  const gap = isTouch() ? GROUP_PX_TOUCH : GROUP_PX_MOUSE;
  for (const lane of lanes) lane.track.append(...groupMarks(lane.points, width, gap, pct, at, onSeek));
  const shades = [
    ...(open ? [h("div", { class: "shade shade-prelive", style: spanStyle(first, lessonStart), title: "Before going live" })] : []),
    ...(tl.pauses || []).map((p) => h("div", {
      class: "shade shade-pause", style: spanStyle(p.start, p.end ?? end), title: `Recording paused at ${at(p.start)}`,
    })),
    ...(tl.gaps || []).map((g) => h("div", {
      class: "shade shade-gap", style: spanStyle(g.start, g.end ?? g.start + 1000), title: `Media gap at ${at(g.start)}`,
    })),
  ];
  const playhead = h("div", { class: "playhead", style: { "--x": pct(lessonStart).toFixed(3) } });
  overlay.append(...shades, playhead);
  return {
    setTime(ms) {
      playhead.style.setProperty("--x", pct(ms).toFixed(3));
    },
  };
}

/** "54 s", "3 min": a short length (the pre-live button). @param {number} ms */
function lengthWordsShort(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/**
 * The marks of one lane: points closer than `gap` px become one group mark
 * (with their count) that seeks to the first of them.
 * @param {Point[]} points
 * @param {number} width the lane's width (px)
 * @param {number} gap
 * @param {(t: number) => number} pct
 * @param {(t: number) => string} at
 * @param {(ms: number) => void} onSeek
 * @returns {HTMLElement[]}
 */
function groupMarks(points, width, gap, pct, at, onSeek) {
  const sorted = [...points].sort((a, b) => a.t - b.t);
  /** @type {Point[][]} */
  const groups = [];
  for (const p of sorted) {
    const last = groups.at(-1);
    if (last && ((pct(p.t) - pct(last[0].t)) / 100) * width < gap) last.push(p);
    else groups.push([p]);
  }
  return groups.map((g) => {
    const [one] = g;
    const seek = (/** @type {MouseEvent} */ e) => {
      e.stopPropagation();
      onSeek(one.t);
    };
    if (g.length === 1) {
      return h("button", {
        type: "button",
        class: `mark ${one.cls}`,
        style: { "--x": pct(one.t).toFixed(3) },
        dataset: { t: String(one.t) },
        title: `${at(one.t)} · ${one.label}`,
        "aria-label": `${one.label}, at ${at(one.t)}`,
        onclick: seek,
      });
    }
    const mid = (pct(g[0].t) + pct(g[g.length - 1].t)) / 2;
    const list = g.map((p) => `${at(p.t)} · ${p.label}`).join("\n");
    return h("button", {
      type: "button",
      class: `mark mark-group ${one.cls}`,
      style: { "--x": mid.toFixed(3) },
      dataset: { t: String(one.t), count: String(g.length) },
      title: list,
      "aria-label": `${g.length} marks from ${at(g[0].t)} to ${at(g[g.length - 1].t)}`,
      onclick: seek,
    }, String(g.length));
  });
}
