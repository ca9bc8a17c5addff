// What the review page and the debrief room share: the recording as this
// reader may see it (view, timeline, comments), the timeline drawn lane by
// lane on the session clock, the comments with their threads, the tally
// rates chart. Times are session-clock ms; a review video's currentTime is
// session seconds (WebM) or (session ms - offset_ms) / 1000 (MP4).

import uPlot from "/vendor/uPlot.esm.js";
import { h, lengthWords, lessonClock } from "./ui.js";

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

  /** Go live, in session ms: 0:00 on the lesson's clock (the server's timeline says where). */
  get lessonStart() {
    return this.timeline?.lesson_start_ms ?? this.span[0];
  }

  /** The earliest moment the timeline knows (before Go live: joins, an early tally…). */
  get firstMs() {
    return Math.min(this.timeline?.first_ms ?? this.lessonStart, this.lessonStart);
  }

  /**
   * A session-clock moment on the lesson's clock: what every time on the
   * review page and in the debrief reads ("1:05", "-0:12" before Go live).
   * @param {number} sessionMs
   */
  at(sessionMs) {
    return lessonClock(sessionMs, this.lessonStart);
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
      h("button", { type: "button", class: "comment-time", onclick: () => onSeek(c.t), title: "Go to this moment" }, review.at(c.t)),
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
 * Taps per minute of each category, minute by minute of the lesson, on the
 * lesson's clock (uPlot, served locally); it follows its container's width.
 * @param {HTMLElement} container
 * @param {Review} review
 * @returns {{chart: uPlot, stop: () => void} | null}
 */
export function renderRates(container, review) {
  const rates = review.timeline?.rates;
  if (!rates || !rates.categories.length) {
    container.replaceChildren(h("p", { class: "muted" }, "No tallies in this lesson."));
    return null;
  }
  const bins = Math.max(...rates.categories.map((c) => rates.series[c].length));
  // x: seconds on the lesson's clock, as the timeline's; each minute's point
  // in the middle of the part of it the lesson had
  const start = rates.start_ms - review.lessonStart;
  const end = Math.max(start + 1000, review.span[1] - review.lessonStart);
  const xs = Array.from({ length: bins }, (_, i) => {
    const from = start + i * rates.bin_ms;
    return (from + Math.min(from + rates.bin_ms, end)) / 2 / 1000;
  });
  /** @type {uPlot.AlignedData} */
  const data = [xs, ...rates.categories.map((c) => rates.series[c])];
  container.replaceChildren();
  const width = () => Math.max(200, container.clientWidth - 16);
  const chart = new uPlot(
    {
      width: width(),
      height: 200,
      title: "Tallies per minute",
      scales: { x: { time: false, range: [start / 1000, end / 1000] } },
      axes: [
        { values: (u, vals) => vals.map((v) => lessonClock(v * 1000, 0)), label: "lesson time" },
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
  const before = rates.before_start ?? 0;
  if (before) {
    container.append(h("p", { class: "hint" }, `${before === 1 ? "1 tally" : `${before} tallies`} before going live ${before === 1 ? "is" : "are"} on the timeline, not in the chart.`));
  }
  // the chart follows the window (and a phone turned sideways)
  const resize = new ResizeObserver(() => {
    if (Math.abs(chart.width - width()) > 1) chart.setSize({ width: width(), height: 200 });
  });
  resize.observe(container);
  return { chart, stop: () => resize.disconnect() };
}

/**
 * The lesson's facts in a line: date, length, teacher, people.
 * @param {Review} review a loaded review
 */
export function lessonFacts(review) {
  const v = review.view;
  if (!v) return [];
  const when = new Date(v.started_at * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });

  const people = (v.participants || []).map((p) => `${p.name} (${p.role})`).join(", ");
  return [
    h("span", {}, when),
    h("span", {}, lengthWords(v.duration_ms)),
    v.teacher_name ? h("span", {}, `Teacher: ${v.teacher_name}`) : null,
    people ? h("span", { class: "muted" }, people) : null,
  ];
}

