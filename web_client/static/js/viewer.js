// What coach and observer pages share: join, watch and hear the classroom,
// presence, recording state, reconnect.

import { Connection, followRoom, readPage } from "./conn.js";
import { animateMeter, levelMeter, RemoteMedia } from "./media.js";
import { showAfter } from "./after.js";
import { $, copy, h, renderConnection, renderPresence, renderRecording, toast } from "./ui.js";

/** @import { JoinPage, JoinReply, Participant, RecordingInfo, Whisperer } from "../../types/wire" */
/** @import { Remote } from "./conn.js" */

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
 */

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
  };
  /** @type {{render: (() => void)[], joined: ((reply: JoinReply, isRejoin: boolean) => void)[]}} */
  const listeners = { render: [], joined: [] };

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
  });

  function teacherState() {
    if (conn.state !== "joined") return "offline";
    const teacherHere = [...state.participants.values()].some((p) => p.role === "teacher");
    const videos = [...conn.remote.values()].filter((r) => r.info.kind === "video").length;
    if (videos) return "live";
    return teacherHere ? "connected" : "waiting";
  }
  const TEACHER_WORDS = {
    offline: "Not connected to the classroom",
    live: "● Classroom live",
    connected: "Teacher connected, not live yet",
    waiting: "Waiting for the teacher…",
  };

  function render() {
    renderConnection(conn);
    const over = conn.state === "ended";
    renderRecording(state.recordingInfo || { state: state.recording }, { ended: over });
    $("#unblock-audio").hidden = !state.audioBlocked || over;
    document.body.dataset.audioBlocked = String(state.audioBlocked && !over);
    const ts = teacherState();
    const el = $("#teacher-state");
    el.dataset.state = ts;
    el.textContent = TEACHER_WORDS[ts];
    renderPresence($("#people"), [...state.participants.values()], state.whispering, state.selfId);
    const people = $("#people").closest("section");
    if (people) people.hidden = over;
    if (conn.state === "ended" || conn.state === "failed") {
      const banner = $("#ended-banner");
      banner.hidden = false;
      banner.textContent =
        conn.state === "ended" ? "This session has ended. Thank you!" : `Can't join: ${conn.detail}`;
    }
    if (over && !state.afterShown) {
      // the lesson is over: its recording, to review
      state.afterShown = true;
      const after = h("section", { class: "panel after", "aria-label": "After the lesson" });
      $("#main").prepend(after);
      showAfter(after, { token: page.token, role, retentionDays: page.retentionDays ?? 30 });
    }
    for (const fn of listeners.render) fn();
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
    if (isRejoin) toast("Reconnected.");
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
  };
  return { conn, state, media, render, listeners, baseHooks };
}
