// Showing remote tracks, audio level meters, device lists.

import { h } from "./ui.js";

/** @import { TrackInfo } from "../../types/wire" */
/** @import { Remote } from "./conn.js" */

/** @type {AudioContext | null} */
let audioContext = null;

/**
 * One shared AudioContext (created lazily; resumed on the next gesture).
 * @returns {AudioContext}
 */
export function getAudioContext() {
  if (!audioContext) {
    const ctx = new AudioContext();
    audioContext = ctx;
    const resume = () => ctx.state === "suspended" && ctx.resume();
    document.addEventListener("pointerdown", resume, { capture: true });
    document.addEventListener("keydown", resume, { capture: true });
  }
  if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
  return audioContext;
}

/**
 * A level meter on a stream: level() is the current peak, 0..1.
 * @typedef {{level(): number, stop(): void}} LevelMeter
 */

/**
 * @param {MediaStream} stream
 * @returns {LevelMeter}
 */
export function levelMeter(stream) {
  const ctx = getAudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  return {
    level() {
      analyser.getFloatTimeDomainData(buf);
      let peak = 0;
      for (const v of buf) peak = Math.max(peak, Math.abs(v));
      return peak;
    },
    stop() {
      source.disconnect();
    },
  };
}

/**
 * Animate a <meter>-like bar element from a level meter until stopped.
 * @param {LevelMeter} meter
 * @param {HTMLElement} barEl
 * @returns {() => void} stop
 */
export function animateMeter(meter, barEl) {
  let running = true;
  let smoothed = 0;
  const tick = () => {
    if (!running) return;
    smoothed = Math.max(meter.level(), smoothed * 0.85);
    barEl.style.setProperty("--level", String(Math.min(1, smoothed * 1.5)));
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return () => {
    running = false;
    meter.stop();
  };
}

/**
 * play() that reports autoplay refusals instead of throwing.
 * @param {HTMLMediaElement} el
 * @param {(el: HTMLMediaElement) => void} [onBlocked]
 * @returns {Promise<boolean>} whether it plays
 */
export async function safePlay(el, onBlocked) {
  try {
    await el.play();
    return true;
  } catch (err) {
    if (err instanceof DOMException && err.name === "NotAllowedError") onBlocked?.(el);
    return false;
  }
}

/** Remote classroom media (video tiles + audio) for coach and observer pages. */
export class RemoteMedia {
  /**
   * @param {HTMLElement} videoContainer
   * @param {HTMLElement} audioContainer
   * @param {{onBlocked?: (el: HTMLMediaElement) => void, labelFor?: (info: TrackInfo) => string, onPicture?: () => void}} [opts]
   *   onPicture: a video's first frame (or a new size) arrived
   */
  constructor(videoContainer, audioContainer, { onBlocked, labelFor, onPicture } = {}) {
    this.videos = videoContainer;
    this.audios = audioContainer;
    this.onBlocked = onBlocked;
    this.labelFor = labelFor || ((info) => info.source);
    this.onPicture = onPicture;
    /** mid -> element (tile or audio) @type {Map<string, HTMLElement>} */
    this.elements = new Map();
    /** <audio> elements started in a user gesture, waiting for a track @type {HTMLAudioElement[]} */
    this.primed = [];
    /** a user gesture started sound on this page (unlock()) */
    this.unlocked = false;
  }

  /**
   * Call inside a user gesture (the Join click): resume the AudioContext and
   * start `count` <audio> elements on a silent stream, so the classroom's
   * audio plays in them the moment it arrives, with no other tap (Safari
   * unlocks per element; Chromium and Firefox per page, after a gesture).
   */
  unlock(count = 2) {
    const ctx = getAudioContext();
    this.unlocked = true;
    while (this.primed.length < count) {
      const audio = h("audio", { autoplay: true, class: "remote-audio", dataset: { primed: "true" } });
      audio.srcObject = ctx.createMediaStreamDestination().stream;
      this.audios.append(audio);
      this.primed.push(audio);
      // the play() call must happen in the gesture itself: no await before it
      safePlay(audio, this.onBlocked);
    }
  }

  /** @param {Remote} remote */
  add(remote) {
    const { info, track, mid } = remote;
    const stream = new MediaStream([track]);
    const data = { mid, source: info.source, kind: info.kind, producerId: info.producerId };
    if (info.kind === "video") {
      const video = h("video", {
        autoplay: true,
        playsinline: true,
        muted: true,
        class: "remote-video",
        dataset: data,
        "aria-label": this.labelFor(info),
      });
      video.muted = true;
      video.srcObject = stream;
      for (const ev of ["loadeddata", "resize"]) video.addEventListener(ev, () => this.onPicture?.());
      const tile = h(
        "figure",
        { class: "video-tile", dataset: data },
        video,
        h("figcaption", {}, this.labelFor(info)),
      );
      this.videos.append(tile);
      this.elements.set(mid, tile);
      safePlay(video, this.onBlocked);
    } else {
      // an element a gesture already started, if there is one
      const audio = this.primed.shift() || h("audio", { autoplay: true, class: "remote-audio" });
      delete audio.dataset.primed;
      Object.assign(audio.dataset, data);
      audio.srcObject = stream;
      if (!audio.isConnected) this.audios.append(audio);
      this.elements.set(mid, audio);
      safePlay(audio, this.onBlocked);
    }
    this.videos.dataset.count = String(this.videos.children.length);
  }

  /** @param {Remote} remote */
  remove(remote) {
    const el = this.elements.get(remote.mid);
    this.elements.delete(remote.mid);
    if (el instanceof HTMLAudioElement && this.unlocked && !el.paused) {
      // started by the Join click: kept for the next track (after a rejoin)
      el.srcObject = getAudioContext().createMediaStreamDestination().stream;
      for (const key of Object.keys(el.dataset)) delete el.dataset[key];
      el.dataset.primed = "true";
      this.primed.push(el);
    } else {
      el?.remove();
    }
    this.videos.dataset.count = String(this.videos.children.length);
  }

  /** Does any video show a picture (frames decoded)? */
  get picture() {
    return [...this.videos.querySelectorAll("video")].some((v) => v.videoWidth > 0 && v.readyState >= 2);
  }

  /** Retry play() on every element (after a user gesture). */
  playAll() {
    for (const el of this.elements.values()) {
      const media = el.tagName === "FIGURE" ? el.querySelector("video") : el;
      // still refused: the prompt comes back
      if (media instanceof HTMLMediaElement) safePlay(media, this.onBlocked);
    }
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    for (const el of this.audios.querySelectorAll("audio")) el.muted = muted;
  }
}

/**
 * A device for a <select>.
 * @typedef {{id: string, label: string}} Device
 */

/**
 * Devices of one kind, with readable labels.
 * @param {MediaDeviceKind} kind
 * @returns {Promise<Device[]>}
 */
export async function listDevices(kind) {
  if (!navigator.mediaDevices?.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  let n = 0;
  return devices
    .filter((d) => d.kind === kind)
    .map((d) => ({ id: d.deviceId, label: d.label || `${kind.replace("input", "").replace("output", "")} ${++n}` }));
}

/**
 * Fill a <select> with devices, keeping the current choice if still there.
 * @param {HTMLSelectElement} select
 * @param {Device[]} devices
 * @param {string} [preferred]
 */
export function fillSelect(select, devices, preferred) {
  const keep = preferred ?? select.value;
  select.replaceChildren(...devices.map((d) => h("option", { value: d.id }, d.label)));
  if (devices.some((d) => d.id === keep)) select.value = keep;
}
