// The review page of one recording: the player and its timeline, comments
// with threads and tags, your notes from the lesson (shared as comments),
// clips, exports, and starting a debrief. What each role sees is the
// server's per-reader view.

import { readPage } from "./conn.js";
import { ReviewPlayer } from "./player.js";
import { CommentPanel } from "./comment_panel.js";
import { MeasuresPanel } from "./measures_panel.js";
import { ApiError, lessonFacts, pageToken, Review } from "./review_core.js";
import { $, copy, describeError, errorText, exposeHooks, h, toast } from "./ui.js";

/** @import { Clip, RecordingView, ReviewPage } from "../../types/wire" */

/** @type {ReviewPage} */
const page = readPage();
const review = new Review(page.recordingId, pageToken());
const state = {
  loaded: false,
  /** @type {string | null} */
  error: null,
  /** @type {Clip[]} */
  clips: [],
  /** @type {ReviewPlayer | null} */
  player: null,
  /** @type {CommentPanel | null} */
  comments: null,
  /** @type {MeasuresPanel | null} */
  measures: null,
};

// -- your notes from the lesson ---------------------------------------------------------

/** The reader's own notes from the lesson, to share as comments (once loaded and mounted). */
function renderMyNotes() {
  const player = /** @type {ReviewPlayer} */ (state.player);
  const mine = (review.timeline?.notes || []).filter((n) => n.mine);
  $("#notes-panel").hidden = !mine.length;
  $("#my-notes").replaceChildren(
    ...mine.map((n) =>
      h("li", { class: "note" },
        h("button", { type: "button", class: "comment-time", onclick: () => player.seekMs(n.t) }, review.at(n.t)),
        " ", h("span", { class: "note-text" }, n.text), " ",
        h("span", { class: "chip chip-muted" }, n.visibility),
        h("button", {
          type: "button",
          class: "btn btn-small share-note",
          onclick: async () => {
            try {
              await review.addComment({ fromNote: n.id });
              toast("Shared with the teacher and coaches as a comment.");
              state.comments?.changed();
            } catch (err) {
              toast(`Not shared: ${errorText(err)}`, "error");
            }
          },
        }, "Share as a comment"),
      )),
  );
}

// -- clips ------------------------------------------------------------------------------

/** The clip's range (session ms), as marked. @type {{from: number | null, to: number | null}} */
const clip = { from: null, to: null };

function renderClipRange() {
  $("#clip-from").textContent = clip.from == null ? "–" : review.at(clip.from);
  $("#clip-to").textContent = clip.to == null ? "–" : review.at(clip.to);
  $("#clip-make", HTMLButtonElement).disabled = !(clip.from != null && clip.to != null && clip.to > clip.from);
}

async function makeClip() {
  const { from, to } = clip;
  if (from == null || to == null) return; // the button is disabled
  const base = `/api/recordings/${encodeURIComponent(review.id)}/clips`;
  /** @type {Clip} */
  let job;
  try {
    job = (await review.api("POST", base, { from_ms: Math.round(from), to_ms: Math.round(to) })).clip;
  } catch (err) {
    toast(`No clip: ${errorText(err)}`, "error");
    return;
  }
  const bar = $("#clip-progress", HTMLProgressElement);
  bar.hidden = false;
  $("#clip-status").textContent = "Making the clip (no re-encoding: it starts at the nearest keyframe)…";
  while (job.state === "queued" || job.state === "making") {
    bar.value = job.progress;
    await new Promise((r) => {
      setTimeout(r, 300);
    });
    job = (await review.api("GET", `${base}/${job.id}`)).clip;
  }
  bar.value = job.progress;
  if (job.state === "done") {
    $("#clip-status").textContent = `Clip ready: ${review.at(job.start_ms + review.offsetMs)}–${review.at(to)}.`;
    state.clips.push(job);
    renderClips();
  } else {
    $("#clip-status").textContent = `The clip failed: ${job.error}`;
  }
}

function renderClips() {
  $("#clips").replaceChildren(
    ...state.clips.map((c) =>
      h("li", {}, h("a", { href: review.fileUrl(c.file), download: c.file }, c.file),
        c.bytes ? ` · ${(c.bytes / 1e6).toFixed(1)} MB` : "")),
  );
}

// -- debrief ------------------------------------------------------------------------------

/** @param {SubmitEvent} e */
async function startDebrief(e) {
  e.preventDefault();
  const members = $("#debrief-members", HTMLTextAreaElement).value.split("\n").map((s) => s.trim()).filter(Boolean);
  try {
    /** @type {{owner: {name: string, url: string}, members: {name: string, url: string}[]}} */
    const data = await review.api("POST", `/api/recordings/${encodeURIComponent(review.id)}/debriefs`, {
      members,
      record: $("#debrief-record", HTMLInputElement).checked,
    });
    const rows = [{ name: `${data.owner.name} (you, the owner)`, url: data.owner.url }, ...data.members];
    $("#debrief-links").replaceChildren(
      ...rows.map((m) =>
        h("div", { class: "invite" },
          h("label", {}, m.name),
          h("div", { class: "invite-row" },
            h("input", { type: "text", readonly: true, value: m.url, class: "invite-url" }),
            h("a", { class: "btn btn-small", href: m.url, target: "_blank", rel: "noopener noreferrer" }, "Open")))),
    );
    toast("Debrief room ready: send each person their link.");
  } catch (err) {
    toast(`No debrief: ${errorText(err)}`, "error");
  }
}

// -- the page ---------------------------------------------------------------------------------

function renderExports() {
  const items = [
    ["cues.vtt", "Cues, whispers and comments (WebVTT)"],
    ["tallies.csv", "Tallies (CSV)"],
    ["rates.csv", "Tallies per minute (CSV)"],
    ["timeline.json", "The whole timeline (JSON)"],
  ];
  $("#exports").replaceChildren(
    ...items.map(([name, label]) => h("li", {}, h("a", { href: review.exportUrl(name), download: name }, label))),
  );
}

async function main() {
  try {
    await review.load();
  } catch (err) {
    const status = err instanceof ApiError ? err.status : null;
    state.error = status === 401 || status === 403
      ? "This link can't open this recording."
      : status === 404 ? "This recording doesn't exist (any more)." : describeError({ message: errorText(err) });
    $("#load-error").hidden = false;
    $("#load-error").textContent = state.error;
    for (const el of [".player-area", ".review-side"]) $(el).hidden = true;
    return;
  }
  const v = /** @type {RecordingView} */ (review.view); // loaded
  document.title = `${v.title} · Review · Sidecoach`;
  $("#lesson-title").textContent = v.title || "Review";
  $("#reader-role").textContent = v.reader.role ? v.reader.role : "admin";
  $("#facts").replaceChildren(...lessonFacts(review).filter((x) => x != null));
  $("#retention").textContent = `Kept until ${new Date(v.retention.delete_after * 1000).toLocaleDateString()}, then deleted automatically.`;
  const player = new ReviewPlayer(review);
  state.player = player;
  player.mount();
  const perms = v.permissions;
  const comments = new CommentPanel(review, {
    nowMs: () => player.nowMs(),
    onSeek: (ms) => player.seekMs(ms),
    onChange: () => player.redrawTimeline(), // the comment lane changed
  });
  state.comments = comments;
  comments.mount({ canComment: perms.comment });
  player.onTime = () => comments.showTime();
  comments.showTime();
  renderMyNotes();
  $("#clip-panel").hidden = !perms.clip;
  $("#clip-start").addEventListener("click", () => {
    clip.from = player.nowMs();
    renderClipRange();
  });
  $("#clip-end").addEventListener("click", () => {
    clip.to = player.nowMs();
    renderClipRange();
  });
  $("#clip-make").addEventListener("click", makeClip);
  $("#debrief-panel").hidden = !perms.debrief;
  $("#debrief-form").addEventListener("submit", startDebrief);
  renderExports();
  if (perms.measures) {
    state.measures = new MeasuresPanel(review, { canRecompute: perms.recomputeMeasures });
    state.measures.mount();
  }
  state.loaded = true;
}

exposeHooks({
  loaded: () => state.loaded,
  error: () => state.error,
  permissions: () => copy(review.view?.permissions),
  measures: () => copy(state.measures?.body ?? null),
  nowMs: () => (state.player ? state.player.nowMs() : null),
  paused: () => (state.player ? state.player.video.paused : null),
  comments: () => copy(review.comments),
  timeline: () => copy(review.timeline),
  view: () => copy(review.view),
  whisperToggle: () => !$("#whisper-toggle-label").hidden,
  whispersPlaying: () => (state.player ? state.player.whispers.filter((w) => !w.el.paused).length : 0),
  lessonStart: () => review.lessonStart,
  chart: () => {
    const chart = state.player?.rates?.chart;
    return chart ? { min: chart.scales.x.min, max: chart.scales.x.max, width: chart.width } : null;
  },
  trackCues: () => {
    const t = state.player?.video.textTracks[0];
    return t && t.cues ? t.cues.length : null;
  },
});

main();
