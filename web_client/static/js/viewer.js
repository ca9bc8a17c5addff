// What coach and observer pages share: join, watch and hear the classroom,
// presence, recording state, reconnect.

import { Connection, followRoom, readPage } from "./conn.js";
import { animateMeter, levelMeter, RemoteMedia } from "./media.js";
import { showAfter } from "./after.js";
import { phaseOf, renderRecordingPill, renderStatus } from "./lesson_state.js";
import { $, copy, describeError, h, plural, renderPresence, toast } from "./ui.js";

/** @import { JoinPage, JoinReply, LessonBeforeJoin, Participant, RecordingInfo, Whisperer } from "../../types/wire" */
/** @import { Remote } from "./conn.js" */
/** @import { Phase } from "./lesson_state.js" */

/**
 * A viewer page's state (what followRoom keeps, and the page's own).
 * @typedef {object} ViewerState
 * @property {JoinPage} page
 * @property {"coach" | "observer"} role
 * @property {string | null} selfId
 * @property {Map<string, Participant>} participants
 * @property {Whisperer[]} whispering
 * @property {string} recording
 * @property {RecordingInfo | null} recordingInfo
 * @property {string} recordingReason
 * @property {boolean} audioBlocked the browser refused to play sound before a tap
 * @property {boolean} muted
 * @property {(() => void) | null} meterStop
 * @property {boolean} afterShown the recordings are shown (the lesson is over)
 * @property {boolean} everLive the classroom was live on this page
 * @property {boolean} entered past the join screen (Join clicked, or skipped)
 * @property {LessonBeforeJoin | null} before what the join screen knows of the lesson
 * @property {number | null} joinClickedAt performance.now() of the Join click
 */

/** localStorage: "skip" goes past the join screen at once on this browser */
export const JOIN_SCREEN_KEY = "sidecoach.joinScreen";
/** how often the join screen asks who is here */
const BEFORE_JOIN_POLL_MS = 4000;

/**
 * Start what coach and observer pages share; the page adds its own parts
 * through `listeners` and `baseHooks`, then calls render() and conn.start().
 * @param {{role: "coach" | "observer"}} opts
 */
export function startViewer({ role }) {
  /** @type {JoinPage} */
  const page = readPage();
  const conn = new Connection({ token: page.token, sessionId: page.sessionId });
  /** @type {ViewerState} */
  const state = {
    page,
    role,
    selfId: null,
    participants: new Map(),
    whispering: [],
    recording: "unknown",
    recordingInfo: null,
    recordingReason: "",
    audioBlocked: false,
    muted: false,
    meterStop: null,
    afterShown: false,
    everLive: false,
    entered: false,
    before: null,
    joinClickedAt: null,
  };
  /**
   * What the page adds: its own rendering (given the phase), what it does on
   * a join, and the lesson's summary once it is over.
   * `enter` runs when the page leaves the join screen (in the Join click's
   * handler, `gesture` true), before it connects.
   * @type {{render: ((p: Phase) => void)[], joined: ((reply: JoinReply, isRejoin: boolean) => void)[], summary: (() => string)[], enter: ((gesture: boolean) => void)[]}}
   */
  const listeners = { render: [], joined: [], summary: [], enter: [] };

  const media = new RemoteMedia($("#videos"), $("#audios"), {
    onBlocked: () => {
      // the browser refused to play sound without a tap: say so, big
      state.audioBlocked = true;
      render();
    },
    labelFor: (info) => {
      const who = state.participants.get(info.participantId)?.name;
      const n = [...conn.remote.values()].filter((r) => r.info.source === info.source).length;
      const src = info.source === "camera" ? `Camera${n > 1 ? ` ${n}` : ""}` : info.source;
      return who ? `${src} · ${who}` : src;
    },
    onPicture: () => render(),
  });

  /** The server forwards the classroom's video to this page. */
  function classroomOffered() {
    return [...conn.remote.values()].some((r) => r.info.kind === "video");
  }

  /** The classroom's video reaches this page: its media flows and frames show. */
  function classroomLive() {
    return classroomOffered() && conn.health.state === "connected" && media.picture;
  }

  /** @returns {Phase} */
  function phase() {
    const live = classroomLive();
    if (live) state.everLive = true;
    return phaseOf({
      conn: conn.state,
      media: conn.health.state,
      needsMedia: classroomOffered(),
      starting: false,
      live,
      everLive: state.everLive,
      recording: state.recording,
    });
  }

  /** For hooks and tests: "offline", "live", "connected" or "waiting". */
  function teacherState() {
    if (conn.state !== "joined") return "offline";
    if (classroomLive()) return "live";
    const teacherHere = [...state.participants.values()].some((p) => p.role === "teacher");
    return teacherHere ? "connected" : "waiting";
  }

  /** The stage's words, by phase; @param {Phase} p */
  function stageWords(p) {
    const teacherHere = [...state.participants.values()].some((x) => x.role === "teacher");
    const going = classroomOffered() ? "The teacher is going live…" : "Teacher connected, not live yet";
    /** @type {Record<Phase, string>} */
    const words = {
      connecting: "Connecting…",
      ready: teacherHere ? going : "Waiting for the teacher…",
      live: "● Classroom live",
      paused: "● Classroom live · recording paused",
      stopped: teacherHere ? "The teacher stopped the classroom video" : "The teacher left",
      ended: "The lesson has ended",
      failed: "Not connected to the classroom",
    };
    return words[p];
  }

  function render() {
    const p = phase();
    const over = p === "ended" || p === "failed";
    renderStatus(conn, p);
    document.body.dataset.joinScreen = String(!state.entered);
    $("#join-screen").hidden = state.entered;
    if (!state.entered) {
      const status = $("#conn-state");
      status.textContent = "Not joined yet";
      status.dataset.state = "idle";
    }
    renderRecordingPill(p, state.recordingInfo || { state: state.recording }, { coming: classroomOffered() });
    $("#unblock-audio").hidden = !state.audioBlocked || over;
    document.body.dataset.audioBlocked = String(state.audioBlocked && !over);
    const el = $("#teacher-state");
    el.dataset.state = p;
    el.textContent = stageWords(p);
    renderPresence($("#people"), [...state.participants.values()], state.whispering, state.selfId);
    // after the end only the lesson's summary and its review link remain
    for (const sel of [".stage", ".tools"]) $(sel).hidden = over || !state.entered;
    if (over) {
      const banner = $("#ended-banner");
      banner.hidden = false;
      banner.textContent =
        p === "ended" ? "This lesson has ended. Thank you!" : `Can't join: ${conn.detail}`;
    }
    if (p === "ended" && !state.afterShown) {
      // the lesson is over: its summary, and its recording to review
      state.afterShown = true;
      const after = h("section", { class: "panel after", "aria-label": "After the lesson" });
      const summary = h("p", { id: "lesson-summary", class: "lesson-summary" }, listeners.summary[0]?.() || `“${page.title}” is over.`);
      $("#main").prepend(summary, after);
      showAfter(after, { token: page.token, role, retentionDays: page.retentionDays ?? 30 });
    }
    for (const fn of listeners.render) fn(p);
  }

  /** @param {Remote} remote */
  function startMeter(remote) {
    state.meterStop?.();
    try {
      const meter = levelMeter(new MediaStream([remote.track]));
      state.meterStop = animateMeter(meter, $("#classroom-meter"));
    } catch {
      state.meterStop = null;
    }
  }

  conn.onstate = () => render();
  conn.onquality = () => render();
  /** the join after which "Reconnected." was said (once media flows again) */
  let toldReconnected = 1;
  conn.onmedia = () => {
    if (conn.joins > toldReconnected && conn.health.state === "connected") {
      toldReconnected = conn.joins;
      toast("Reconnected.");
    }
    render();
  };
  conn.onjoined = (reply, isRejoin) => {
    state.selfId = reply.participantId;
    state.participants = new Map(reply.participants.map((p) => [p.id, p]));
    state.participants.set(reply.participantId, {
      id: reply.participantId,
      role: reply.role,
      name: reply.name,
    });
    state.whispering = reply.coaching?.whispering || [];
    state.recordingInfo = reply.recording || null;
    state.recording = reply.recording?.state || "unknown";
    for (const fn of listeners.joined) fn(reply, isRejoin);
    render();
  };
  conn.ontrack = (remote) => {
    if (remote.info.source === "whisper") return; // never expected here; never played
    media.add(remote);
    if (remote.info.kind === "audio" && remote.info.source === "mic") startMeter(remote);
    media.setMuted(state.muted);
    render();
  };
  conn.ontrackremoved = (remote) => {
    media.remove(remote);
    if (remote.info.kind === "audio" && remote.info.source === "mic") {
      state.meterStop?.();
      state.meterStop = null;
      $("#classroom-meter").style.setProperty("--level", "0");
    }
    render();
  };
  followRoom(conn, state, render);

  const unblock = () => {
    if (!state.audioBlocked) return;
    state.audioBlocked = false;
    media.playAll();
    render();
  };
  $("#unblock-audio").addEventListener("click", unblock);
  // any tap on the page counts: the browser allows sound after a gesture
  document.addEventListener("pointerdown", unblock);
  document.addEventListener("keydown", unblock);
  const soundToggle = $("#sound-toggle");
  soundToggle.addEventListener("click", () => {
    state.muted = !state.muted;
    media.setMuted(state.muted);
    soundToggle.setAttribute("aria-pressed", String(state.muted));
    soundToggle.textContent = state.muted ? "Unmute classroom" : "Mute classroom";
  });

  // -- the join screen ---------------------------------------------------------

  /** Who is here and whether the classroom is live, in words. */
  function hereWords() {
    const b = state.before;
    if (!b) return "Checking who is here…";
    if (b.state === "ended") return "This lesson has ended.";
    const here = b.here || {};
    const parts = [];
    if (here.teacher) parts.push(`the teacher (${b.teacherName})`);
    if (here.coach) parts.push(plural(here.coach, "coach"));
    if (here.observer) parts.push(plural(here.observer, "observer"));
    const who = parts.length ? `Here now: ${parts.join(", ")}.` : "Nobody has joined yet.";
    return b.classroomLive ? `${who} The classroom is live.` : who;
  }

  async function lookBeforeJoin() {
    if (state.entered) return;
    let words = "";
    try {
      const r = await fetch("/api/lesson", { headers: { Authorization: `Bearer ${page.token}` } });
      const body = await r.json();
      if (r.ok) state.before = body;
      else words = `Can't tell who is here: ${describeError(body.error)}`;
    } catch {
      /* offline for a moment: asked again */
    }
    if (state.entered) return;
    const el = $("#join-here");
    el.textContent = words || hereWords();
    el.dataset.live = String(Boolean(state.before?.classroomLive));
    setTimeout(lookBeforeJoin, BEFORE_JOIN_POLL_MS);
  }

  /**
   * Leave the join screen and join the lesson.
   * @param {boolean} gesture inside the Join click: sound may start now
   */
  function enter(gesture) {
    if (state.entered) return;
    state.entered = true;
    if (gesture) {
      // before anything async: the click is what lets the classroom play
      state.joinClickedAt = performance.now();
      media.unlock();
    }
    for (const fn of listeners.enter) fn(gesture);
    render();
    conn.start();
  }

  const skip = $("#join-skip", HTMLInputElement);
  skip.checked = localStorage.getItem(JOIN_SCREEN_KEY) === "skip";
  skip.addEventListener("change", () => {
    if (skip.checked) localStorage.setItem(JOIN_SCREEN_KEY, "skip");
    else localStorage.removeItem(JOIN_SCREEN_KEY);
  });
  $("#join").addEventListener("click", () => enter(true));
  // skipped: the way back to the screen (another microphone, the headset advice)
  const again = $("#join-screen-again", HTMLButtonElement);
  again.hidden = !skip.checked;
  again.addEventListener("click", () => {
    localStorage.removeItem(JOIN_SCREEN_KEY);
    skip.checked = false;
    again.hidden = true;
    toast("The join screen will show next time you open this lesson.");
  });

  /** Show the join screen, or (skipped on this browser) join at once. */
  function start() {
    render();
    if (skip.checked) enter(false);
    else lookBeforeJoin();
  }

  const baseHooks = {
    role: () => role,
    state: () => conn.state,
    joins: () => conn.joins,
    drops: () => conn.drops,
    socket: () => conn.socket,
    pc: () => conn.pc,
    participantId: () => state.selfId,
    participants: () => copy([...state.participants.values()]),
    whispering: () => copy(state.whispering),
    recording: () => state.recording,
    recordingPlanned: () => Boolean(state.recordingInfo?.planned),
    audioBlocked: () => state.audioBlocked,
    quality: () => conn.quality,
    remoteTracks: () => [...conn.remote.values()].map((r) => ({ mid: r.mid, ...copy(r.info) })),
    teacherState: () => teacherState(),
    phase: () => phase(),
    mediaReason: () => conn.health.reason,
    joinScreen: () => !state.entered,
    joinClickedAt: () => state.joinClickedAt,
    audioUnlocked: () => media.unlocked,
    before: () => copy(state.before),
  };
  return { conn, state, media, render, phase, listeners, baseHooks, start };
}
