// The review player: the classroom video (with its WebVTT track of cues,
// whispers and comments), further cameras kept in step, the whispers mixed
// in on request, the timeline's playhead, and the keyboard (space, arrows,
// J/K/L). On the review page the user drives it; in a debrief the room does
// (``controlled``): the user's actions become intents for the driver.

import { renderRates } from "./review_core.js";
import { renderTimeline } from "./timeline.js";
import { $, h, isTyping } from "./ui.js";

/** @import { RecordingView } from "../../types/wire" */
/** @import { Review } from "./review_core.js" */

const STEP_S = 5;
const JUMP_S = 10;

/** @typedef {"play" | "pause" | "seek" | "rate"} Action */

/**
 * What the user asked the player for (in a debrief, for the driver to do):
 * `ms` is where (seek) or where the player is now; `rate` the speed asked for.
 * @typedef {{action: Action, ms: number | null, rate: number | null}} Intent
 */

export class ReviewPlayer {
  /**
   * @param {Review} review a loaded Review
   * @param {{controlled?: boolean, onIntent?: ((intent: Intent) => void) | null}} [opts]
   *   controlled: the room decides (debrief): the user's actions go to onIntent
   */
  constructor(review, { controlled = false, onIntent = null } = {}) {
    this.review = review;
    this.controlled = controlled;
    this.onIntent = onIntent;
    this.video = $("#player", HTMLVideoElement);
    /** @type {{el: HTMLVideoElement, offset: number}[]} */
    this.cameras = [];
    /** @type {{el: HTMLAudioElement, start: number, end: number}[]} */
    this.whispers = [];
    /** @type {{setTime(ms: number): void} | null} */
    this.timeline = null;
    this.whispersOn = false;
    /** @type {number | null} */
    this.lastSeekMs = null;
    /** the speed to show (a debrief shows the room's, not a nudged one) @type {number | null} */
    this.displayRate = null;
    /** the minutes before Go live are shown on the timeline */
    this.prelive = false;
    /** the timeline was drawn for this width (px): drawn again when it changes */
    this.drawnWidth = 0;
    /** the user is dragging the seek bar (it is not moved under the finger) */
    this.scrubbing = false;
    /** the tally-rates chart @type {ReturnType<typeof renderRates>} */
    this.rates = null;
    /** called with the session ms shown, in the same frame as the bar and the playhead
     * (the comment form's time) @type {((ms: number) => void) | null} */
    this.onTime = null;
  }

  mount() {
    const r = this.review;
    const v = this.video;
    const view = /** @type {RecordingView} */ (r.view); // loaded
    const review = view.review || {};
    // one set of controls: the bar below, never the video's own as well
    v.controls = false;
    if (review.classroom) {
      v.src = r.fileUrl(review.classroom);
      const track = h("track", {
        kind: "captions",
        label: "Cues, whispers and comments",
        srclang: "en",
        src: r.exportUrl("cues.vtt"),
        default: true,
      });
      v.append(track);
    }
    for (const cam of review.cameras || []) {
      const el = h("video", { class: "camera-video", muted: true, playsinline: true, preload: "metadata" });
      el.muted = true;
      el.src = r.fileUrl(cam.file);
      $("#cameras").append(h("figure", { class: "video-tile" }, el, h("figcaption", {}, "Another camera")));
      this.cameras.push({ el, offset: cam.offset_ms || 0 });
    }
    const whispers = review.whispers || [];
    const toggle = $("#whisper-toggle-label");
    toggle.hidden = !(view.permissions?.whispers && whispers.length);
    const whisperToggle = $("#whisper-toggle", HTMLInputElement);
    whisperToggle.addEventListener("change", () => this.setWhispers(whisperToggle.checked));
    this.redrawTimeline();
    new ResizeObserver(() => {
      if (Math.abs($("#timeline").clientWidth - this.drawnWidth) > 2) this.redrawTimeline();
    }).observe($("#timeline"));
    this.rates = renderRates($("#rates"), r);
    this.mountBar();
    // 0:00 is Go live: a review starts there, not in the minutes before it
    v.addEventListener("loadedmetadata", () => {
      if (!this.controlled && this.nowMs() < r.lessonStart) this.seekMs(r.lessonStart);
    }, { once: true });
    $("#play").addEventListener("click", () => this.intent(v.paused ? "play" : "pause"));
    const rate = $("#rate", HTMLSelectElement);
    rate.addEventListener("change", () => this.intent("rate", null, Number(rate.value)));
    document.addEventListener("keydown", (e) => this.onKey(e));
    for (const ev of ["play", "pause", "ratechange"]) v.addEventListener(ev, () => this.renderBar());
    v.addEventListener("seeked", () => this.follow(true));
    const tick = () => {
      this.follow(false);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    this.renderBar();
  }

  /** Draw the timeline again (the comments changed, its width changed, pre-live opened). */
  redrawTimeline() {
    const container = $("#timeline");
    this.drawnWidth = container.clientWidth;
    const timeline = renderTimeline(container, this.review, {
      onSeek: (ms) => this.intent("seek", ms),
      prelive: this.prelive,
      onPrelive: (open) => {
        this.prelive = open;
        this.redrawTimeline();
      },
    });
    this.timeline = timeline;
    timeline.setTime(this.nowMs());
  }

  /** The bar's own controls: the seek bar, mute and full screen. */
  mountBar() {
    const v = this.video;
    const [start, end] = this.review.span;
    const seek = $("#seek", HTMLInputElement);
    seek.min = String(this.review.lessonStart);
    seek.max = String(end);
    seek.value = String(Math.max(start, this.review.lessonStart));
    $("#duration").textContent = this.review.at(end);
    seek.addEventListener("input", () => {
      this.scrubbing = true;
      $("#now").textContent = this.review.at(Number(seek.value));
    });
    seek.addEventListener("change", () => {
      this.scrubbing = false;
      this.intent("seek", Number(seek.value));
    });
    const mute = $("#mute");
    mute.addEventListener("click", () => {
      v.muted = !v.muted;
      mute.textContent = v.muted ? "Unmute" : "Mute";
      mute.setAttribute("aria-pressed", String(v.muted));
    });
    const full = $("#fullscreen");
    full.hidden = !document.fullscreenEnabled;
    full.addEventListener("click", () => {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else $(".player-wrap").requestFullscreen().catch(() => {});
    });
  }

  /** Session ms now on the main video. */
  nowMs() {
    return this.review.sessionMs(this.video);
  }

  // -- what the user asks for ----------------------------------------------------

  /**
   * The user asked for something: do it, or (controlled) tell the room.
   * @param {Action} action
   * @param {number | null} [ms] where to seek (session ms)
   * @param {number | null} [rate] the speed
   */
  intent(action, ms = null, rate = null) {
    if (this.controlled) {
      this.onIntent?.({ action, ms: action === "seek" ? ms : this.nowMs(), rate });
      return;
    }
    if (action === "play") this.video.play().catch(() => {});
    else if (action === "pause") this.video.pause();
    else if (action === "seek" && ms != null) this.seekMs(ms);
    else if (action === "rate" && rate != null) this.video.playbackRate = rate;
  }

  /** @param {KeyboardEvent} e */
  onKey(e) {
    if (isTyping(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
    const now = this.nowMs();
    /** @type {Record<string, () => void>} */
    const keys = {
      Space: () => this.intent(this.video.paused ? "play" : "pause"),
      KeyK: () => this.intent(this.video.paused ? "play" : "pause"),
      ArrowLeft: () => this.intent("seek", now - STEP_S * 1000),
      ArrowRight: () => this.intent("seek", now + STEP_S * 1000),
      KeyJ: () => this.intent("seek", now - JUMP_S * 1000),
      KeyL: () => this.intent("seek", now + JUMP_S * 1000),
    };
    const act = keys[e.code];
    if (!act) return;
    e.preventDefault();
    act();
  }

  // -- doing it ------------------------------------------------------------------------

  /**
   * Go to a moment of the lesson (session ms), within the recording.
   * @param {number} ms
   */
  seekMs(ms) {
    const [start, end] = this.review.span;
    const clamped = Math.min(end, Math.max(start, ms));
    this.lastSeekMs = clamped;
    this.video.currentTime = this.review.mediaTime(clamped);
  }

  /**
   * Mix the coaches' whispers in (or not).
   * @param {boolean} on
   */
  setWhispers(on) {
    this.whispersOn = on;
    if (on && !this.whispers.length) {
      for (const w of this.review.view?.review.whispers || []) {
        const el = h("audio", { preload: "auto", dataset: { file: w.file } });
        el.src = this.review.fileUrl(w.file);
        $("#whisper-audio").append(el);
        this.whispers.push({ el, start: w.start_ms ?? 0, end: w.end_ms ?? 0 });
      }
    }
    if (!on) for (const w of this.whispers) w.el.pause();
    this.follow(true);
  }

  /**
   * Keep cameras, whispers and the playhead with the main video.
   * @param {boolean} hard after a seek: line everything up now
   */
  follow(hard) {
    const v = this.video;
    const ms = this.nowMs();
    this.timeline?.setTime(ms);
    if (!this.scrubbing) {
      $("#now").textContent = this.review.at(ms);
      $("#seek", HTMLInputElement).value = String(ms);
    }
    this.onTime?.(ms);
    for (const cam of this.cameras) this.keepWith(cam.el, (ms - cam.offset) / 1000, hard);
    for (const w of this.whispers) {
      const inside = this.whispersOn && ms >= w.start - 50 && ms <= w.end + 50;
      if (inside) this.keepWith(w.el, ms / 1000, hard);
      else if (!w.el.paused) w.el.pause();
    }
    if (hard) this.renderBar();
    return v;
  }

  /**
   * Keep one more media element with the main video.
   * @param {HTMLMediaElement} el
   * @param {number} seconds where `el` should be
   * @param {boolean} hard
   */
  keepWith(el, seconds, hard) {
    const v = this.video;
    if (hard || Math.abs(el.currentTime - seconds) > 0.25) el.currentTime = Math.max(0, seconds);
    el.playbackRate = v.playbackRate;
    if (v.paused && !el.paused) el.pause();
    if (!v.paused && el.paused) el.play().catch(() => {});
  }

  renderBar() {
    const v = this.video;
    $("#play").textContent = v.paused ? "Play" : "Pause";
    $("#rate", HTMLSelectElement).value = String(this.displayRate ?? v.playbackRate);
  }
}
