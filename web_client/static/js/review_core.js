// What the review page and the debrief room share: the recording as this
// reader may see it (view, timeline, comments), the timeline drawn lane by
// lane on the session clock, the comments with their threads, the tally
// rates chart. Times are session-clock ms; a review video's currentTime is
// session seconds (WebM) or (session ms - offset_ms) / 1000 (MP4).

import uPlot from "/vendor/uPlot.esm.js";
import { clock, h } from "./ui.js";

/** @import { NewComment, RecordingView, ReviewComment, Timeline } from "../../types/wire" */

const TOKEN_KEY = "sidecoach.adminToken";

/** The invite in the address, else the lobby's admin token (this tab). */
export function pageToken() {
  const url = new URL(location.href);
  return url.searchParams.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
}

/** An HTTP API call refused: the server's message, and the HTTP status. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} status
   */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** One recording as this reader may see it: its view, timeline and comments. */
export class Review {
  /**
   * @param {string} recordingId
   * @param {string} token the invite's (or the admin's)
   */
  constructor(recordingId, token) {
    this.id = recordingId;
    this.token = token;
    /** @type {RecordingView | null} */
    this.view = null;
    /** @type {Timeline | null} */
    this.timeline = null;
    /** @type {ReviewComment[]} */
    this.comments = [];
    /** a signed-in person's CSRF token (no invite or admin token: the login cookie) */
    this.csrf = "";
  }

  /**
   * The headers that say who is asking: the token, or (signed in, for a
   * change) the page's CSRF token.
   * @param {string} method
   * @returns {Promise<Record<string, string>>}
   */
  async who(method) {
    if (this.token) return { Authorization: `Bearer ${this.token}` };
    if (method === "GET") return {};
    if (!this.csrf) {
      const res = await fetch("/api/me");
      this.csrf = res.ok ? (await res.json()).csrf || "" : "";
    }
    return { "X-CSRF-Token": this.csrf };
  }

  /**
   * Call the HTTP API with this reader's token; throws an ApiError.
   * @param {"GET" | "POST" | "DELETE"} method
   * @param {string} path
   * @param {object} [body] sent as JSON
   * @returns {Promise<any>} the JSON body
   */
  async api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: {
        ...(await this.who(method)),
        ...(body ? { "Content-Type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try {
      data = await res.json();
    } catch {
      /* not JSON */
    }
    if (!res.ok) throw new ApiError(data?.error?.message || `HTTP ${res.status}`, res.status);
    return data;
  }

  /** Fetch the view, the timeline and the comments (throws an ApiError). */
  async load() {
    const base = `/api/recordings/${encodeURIComponent(this.id)}`;
    const [view, timeline, comments] = await Promise.all([
      this.api("GET", base),
      this.api("GET", `${base}/timeline`),
      this.api("GET", `${base}/comments`),
    ]);
    this.view = view.view;
    this.timeline = timeline.timeline;
    this.comments = comments.comments;
    return this;
  }

  /**
   * A file of this recording, with the token (media elements send no headers).
   * @param {string} name
   */
  fileUrl(name) {
    return `/recordings/${encodeURIComponent(this.id)}/${encodeURIComponent(name)}?token=${encodeURIComponent(this.token)}`;
  }

  /**
   * An export of this recording (cues.vtt, tallies.csv...), with the token.
   * @param {string} name
   */
  exportUrl(name) {
    return `/api/recordings/${encodeURIComponent(this.id)}/export/${name}?token=${encodeURIComponent(this.token)}`;
  }

  get offsetMs() {
    return this.view?.review?.offset_ms || 0;
  }

  /**
   * Session ms shown by ``video`` now.
   * @param {HTMLMediaElement} video
   */
  sessionMs(video) {
    return video.currentTime * 1000 + this.offsetMs;
  }

  /**
   * The review video's time (s) of a session-clock moment.
   * @param {number} sessionMs
   */
  mediaTime(sessionMs) {
    return Math.max(0, (sessionMs - this.offsetMs) / 1000);
  }

  /** @returns {[number, number]} the lesson's [start, end] in session ms */
  get span() {
    const t = this.timeline;
    const start = this.view?.start_ms ?? t?.start_ms ?? 0;
    const end = Math.max(this.view?.end_ms ?? 0, t?.end_ms ?? 0, start + 1000);
    return [start, end];
  }

  /**
   * Post a comment (or a reply, or a note shared as a comment).
   * @param {NewComment} body
   * @returns {Promise<ReviewComment>}
   */
  async addComment(body) {
    const data = await this.api("POST", `/api/recordings/${encodeURIComponent(this.id)}/comments`, body);
    this.merge(data.comment);
    return data.comment;
  }

  /**
   * Add (or update) a comment; true if it is new.
   * @param {ReviewComment} comment
   */
  merge(comment) {
    const i = this.comments.findIndex((c) => c.id === comment.id);
    if (i >= 0) {
      this.comments[i] = comment;
      return false;
    }
    this.comments.push(comment);
    return true;
  }
}

// -- the timeline --------------------------------------------------------------------

const CUE_WORDS = { sent: "sent", delivered: "on the teacher's screen", acknowledged: "seen by the teacher" };

/** @param {Timeline["cues"][number]} c */
function cueState(c) {
  if (c.acknowledged_t != null) return "acknowledged";
  if (c.delivered_t != null) return "delivered";
  return "sent";
}

/**
 * Draw the lesson's lanes into ``container``; returns {setTime(ms)} to move
 * the playhead. ``onSeek(ms)`` is called when a marker or a lane is clicked.
 * @param {HTMLElement} container
 * @param {Review} review
 * @param {{onSeek: (ms: number) => void}} opts
 * @returns {{setTime(ms: number): void}}
 */
export function renderTimeline(container, review, { onSeek }) {
  const [start, end] = review.span;
  /** @type {Partial<Timeline>} */
  const tl = review.timeline || {};
  const pct = (/** @type {number} */ t) => Math.min(100, Math.max(0, ((t - start) / (end - start)) * 100));
  const at = (/** @type {number} */ t) => ({ "--x": pct(t).toFixed(3) });
  /** @param {number} a @param {number} b */
  const spanStyle = (a, b) => ({ "--x": pct(a).toFixed(3), "--w": Math.max(0.4, pct(b) - pct(a)).toFixed(3) });
  /** @param {string} cls @param {number} t @param {string} label */
  const mark = (cls, t, label, text = "") =>
    h("button", {
      type: "button",
      class: `mark ${cls}`,
      style: at(t),
      dataset: { t: String(t) },
      title: `${clock(t)} · ${label}`,
      "aria-label": `${label}, at ${clock(t)}`,
      onclick: (/** @type {MouseEvent} */ e) => {
        e.stopPropagation();
        onSeek(t);
      },
    }, text);
  /** @type {HTMLElement[]} */
  const lanes = [];
  /** @param {string} name @param {string} key @param {HTMLElement[]} items */
  const lane = (name, key, items) => {
    const track = h("div", {
      class: "lane-track",
      onclick: (/** @type {MouseEvent} */ e) => {
        const box = track.getBoundingClientRect();
        onSeek(start + ((e.clientX - box.left) / box.width) * (end - start));
      },
    }, items);
    lanes.push(h("div", { class: "lane", dataset: { lane: key } }, h("span", { class: "lane-name" }, name), track));
  };
  if (review.view?.permissions?.cues) {
    lane("Cues", "cues", (tl.cues || []).map((c) =>
      mark(`mark-cue cue-${cueState(c)}`, c.t, `Cue “${c.text}”${c.by ? ` from ${c.by}` : ""}: ${CUE_WORDS[cueState(c)]}`)));
  }
  if (review.view?.permissions?.whispers) {
    lane("Whispers", "whispers", (tl.whispers || []).map((w) =>
      h("button", {
        type: "button",
        class: "span span-whisper",
        style: spanStyle(w.start, w.end ?? w.start + 1000),
        dataset: { t: String(w.start) },
        "aria-label": `${w.name || "A coach"} whispered at ${clock(w.start)}`,
        title: `${clock(w.start)} · ${w.name || "a coach"} whispers`,
        onclick: (/** @type {MouseEvent} */ e) => {
          e.stopPropagation();
          onSeek(w.start);
        },
      })));
  }
  for (const category of tl.tally_categories || []) {
    lane(category, `tally-${category}`, (tl.tallies || []).filter((x) => x.category === category).map((x) =>
      mark("mark-tally", x.t, `${category}${x.name ? ` (${x.name})` : ""}`)));
  }
  const notes = tl.notes || [];
  if (notes.length) {
    lane("Notes", "notes", notes.map((n) => mark("mark-note", n.t, `Note by ${n.name}: ${n.text}`)));
  }
  lane("Comments", "comments", review.comments.filter((c) => !c.parent).map((c) =>
    mark("mark-comment", c.t, `${c.name}: ${c.text}`)));
  const presence = tl.presence || [];
  if (review.view?.permissions?.presence && presence.length) {
    lane("Joins & leaves", "presence", presence.map((p) =>
      mark(`mark-${p.type}`, p.t, `${p.name} (${p.role}) ${p.type === "join" ? "joined" : "left"}`)));
  }
  const shades = [
    ...(tl.pauses || []).map((p) => h("div", {
      class: "shade shade-pause", style: spanStyle(p.start, p.end ?? end), title: `Recording paused at ${clock(p.start)}`,
    })),
    ...(tl.gaps || []).map((g) => h("div", {
      class: "shade shade-gap", style: spanStyle(g.start, g.end ?? g.start + 1000), title: `Media gap at ${clock(g.start)}`,
    })),
  ];
  const playhead = h("div", { class: "playhead", style: at(start) });
  const scale = h("div", { class: "timeline-scale" },
    ...[0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: { "--x": String(f * 100) } }, clock(start + f * (end - start)))));
  container.replaceChildren(
    h("div", { class: "timeline-body" }, ...lanes, h("div", { class: "timeline-overlay" }, ...shades, playhead)),
    scale,
  );
  container.dataset.start = String(start);
  container.dataset.end = String(end);
  return {
    setTime(ms) {
      playhead.style.setProperty("--x", pct(ms).toFixed(3));
    },
  };
}

// -- comments ---------------------------------------------------------------------------

/** @type {Record<string, string>} */
const VISIBILITY_WORDS = { private: "only you", team: "teacher & coaches", everyone: "everyone" };

/**
 * Threads in time order, replies under their first comment.
 * @param {HTMLElement} container
 * @param {Review} review
 * @param {{onSeek: (ms: number) => void, onReply: (c: ReviewComment) => void, canReply: boolean}} opts
 */
export function renderComments(container, review, { onSeek, onReply, canReply }) {
  const roots = review.comments.filter((c) => !c.parent).sort((a, b) => a.t - b.t || a.created_at - b.created_at);
  /** @param {string} id */
  const replies = (id) => review.comments.filter((c) => c.parent === id).sort((a, b) => a.created_at - b.created_at);
  /** @param {ReviewComment} c @param {boolean} isReply */
  const item = (c, isReply) =>
    h("li", { class: `comment${isReply ? " comment-reply" : ""}`, dataset: { commentId: c.id } },
      h("button", { type: "button", class: "comment-time", onclick: () => onSeek(c.t), title: "Go to this moment" }, clock(c.t)),
      " ",
      h("strong", { class: "comment-who" }, c.name),
      h("span", { class: "muted" }, ` (${c.role})`),
      c.tag ? h("span", { class: "chip" }, c.tag) : null,
      h("span", { class: "chip chip-muted" }, VISIBILITY_WORDS[c.visibility] || c.visibility),
      h("p", { class: "comment-text" }, c.text),
      !isReply && canReply ? h("button", { type: "button", class: "btn btn-small reply", onclick: () => onReply(c) }, "Reply") : null,
    );
  container.replaceChildren(
    ...(roots.length
      ? roots.flatMap((c) => [item(c, false), ...replies(c.id).map((r) => item(r, true))])
      : [h("li", { class: "muted" }, "No comments yet.")]),
  );
}

// -- tally rates -------------------------------------------------------------------------

const SERIES_COLOURS = ["#1a56db", "#c4161c", "#1b7f3b", "#b35c00", "#6b2fb3", "#00838f", "#8a6d00"];

/**
 * Taps per minute of each category, over the lesson (uPlot, served locally).
 * @param {HTMLElement} container
 * @param {Review} review
 * @returns {uPlot | null}
 */
export function renderRates(container, review) {
  const rates = review.timeline?.rates;
  if (!rates || !rates.categories.length) {
    container.replaceChildren(h("p", { class: "muted" }, "No tallies in this lesson."));
    return null;
  }
  const bins = Math.max(...rates.categories.map((c) => rates.series[c].length));
  const xs = Array.from({ length: bins }, (_, i) => (rates.start_ms + (i + 0.5) * rates.bin_ms) / 1000);
  /** @type {uPlot.AlignedData} */
  const data = [xs, ...rates.categories.map((c) => rates.series[c])];
  container.replaceChildren();
  const width = Math.max(280, container.clientWidth || 600);
  return new uPlot(
    {
      width,
      height: 200,
      title: "Tallies per minute",
      scales: { x: { time: false } },
      axes: [
        { values: (u, vals) => vals.map((v) => clock(v * 1000)), label: "lesson time" },
        { label: "per minute" },
      ],
      series: [
        {},
        ...rates.categories.map((c, i) => ({
          label: c,
          stroke: SERIES_COLOURS[i % SERIES_COLOURS.length],
          width: 2,
          points: { show: true },
        })),
      ],
    },
    data,
    container,
  );
}

/**
 * The lesson's facts in a line: date, length, teacher, people.
 * @param {Review} review a loaded review
 */
export function lessonFacts(review) {
  const v = review.view;
  if (!v) return [];
  const when = new Date(v.started_at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  const minutes = Math.max(1, Math.round((v.duration_ms || 0) / 60000));
  const people = (v.participants || []).map((p) => `${p.name} (${p.role})`).join(", ");
  return [
    h("span", {}, when),
    h("span", {}, `${minutes} min`),
    v.teacher_name ? h("span", {}, `Teacher: ${v.teacher_name}`) : null,
    people ? h("span", { class: "muted" }, people) : null,
  ];
}

