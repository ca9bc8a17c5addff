// The lessons library: past lessons with a thumbnail, date, length, teacher
// and coaches, and links to review them and to start a debrief. An admin
// (the lobby's token, kept in this tab) sees every lesson; an invite sees
// its own.

import { pageToken } from "./review_core.js";
import { $, errorText, exposeHooks, h, lengthWords } from "./ui.js";

/** @import { Lesson } from "../../types/wire" */

const token = pageToken();
/** @type {{lessons: Lesson[], loaded: boolean, error: string | null}} */
const state = { lessons: [], loaded: false, error: null };
/** @param {string} path */
const withToken = (path) =>
  new URL(location.href).searchParams.get("token") ? `${path}?token=${encodeURIComponent(token)}` : path;

/** @param {Lesson} lesson */
function card(lesson) {
  const s = lesson.session;
  const rec = lesson.recordings[0];
  const when = new Date((s.started_at || s.created_at) * 1000).toLocaleString([], {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const thumb = rec?.thumbnail
    ? h("img", {
        class: "lesson-thumb",
        alt: `The classroom in “${s.title}”`,
        src: `/recordings/${encodeURIComponent(rec.id)}/${encodeURIComponent(rec.thumbnail)}?token=${encodeURIComponent(token)}`,
      })
    : h("div", { class: "lesson-thumb lesson-thumb-none" }, rec ? "No picture" : "Not recorded");
  return h(
    "li",
    { class: "lesson-card", dataset: { sessionId: s.id } },
    thumb,
    h("div", { class: "lesson-body" },
      h("h2", {}, s.title),
      h("p", { class: "muted" }, `${when}${rec ? ` · ${lengthWords(rec.duration_ms)}` : ""} · ${s.teacher_name}`),
      lesson.coaches.length ? h("p", {}, `Coaches: ${lesson.coaches.join(", ")}`) : null,
      lesson.debriefs.length
        ? h("p", { class: "hint" }, `${lesson.debriefs.length} debrief${lesson.debriefs.length > 1 ? "s" : ""}`)
        : null,
      h("div", { class: "lesson-actions" },
        ...lesson.recordings.map((r, i) =>
          h("a", { class: "btn btn-small btn-primary review-link", href: withToken(`/review/${encodeURIComponent(r.id)}`) },
            lesson.recordings.length > 1 ? `Review part ${i + 1}` : "Review")),
        rec ? h("a", { class: "btn btn-small", href: `${withToken(`/review/${encodeURIComponent(rec.id)}`)}#debrief-panel` }, "Start a debrief") : null,
      ),
    ),
  );
}

async function load() {
  try {
    const res = await fetch("/api/lessons", { headers: { Authorization: `Bearer ${token}` } });
    const data = await res.json();
    if (!res.ok) throw new Error(data?.error?.message || `HTTP ${res.status}`);
    state.lessons = data.lessons;
    $("#lessons").replaceChildren(
      ...(state.lessons.length
        ? state.lessons.map(card)
        : [h("li", { class: "muted" }, "No past lessons yet.")]),
    );
  } catch (err) {
    state.error = token ? `Couldn't load the lessons: ${errorText(err)}` : "Sign in on the lobby page first.";
    $("#lessons-error").hidden = false;
    $("#lessons-error").textContent = state.error;
  }
  state.loaded = true;
}

exposeHooks({
  loaded: () => state.loaded,
  error: () => state.error,
  lessons: () => structuredClone(state.lessons),
});
load();
