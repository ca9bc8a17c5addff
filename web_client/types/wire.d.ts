// The shapes of what the server sends and accepts, for the type check of the
// pages' JavaScript (tsc -p web_client). Nothing here runs: the names live in
// static/js/protocol.js, the meaning in docs/PROTOCOL.md, and the truth in
// server/signaling/schemas.py (requests) and the server's to_client()s.
// Pages import these with `/** @import { Cue } from "../../types/wire" */`.

import type { ErrorCode, EventName as EventConst, RemovalCode, RequestName as RequestConst } from "../static/js/protocol.js";

/** Milliseconds on the session clock (since the session went live). */
export type SessionMs = number;
/** Unix time in seconds (HTTP API records). */
export type UnixSeconds = number;

export type Role = "teacher" | "coach" | "observer" | "member";
export type Source = "camera" | "screen" | "mic" | "whisper";
export type Kind = "audio" | "video";
export type Visibility = "private" | "team" | "everyone";
export type RecordingStateName = "off" | "recording" | "paused" | "error" | "ended";
export type CueStateName = "sent" | "delivered" | "acknowledged";

/** `{code, message}` of a refused request (or a failed HTTP call). */
export interface WireError {
  code: ErrorCode;
  message: string;
}

/** Every acknowledgement: `{ok: true, ...reply}` or `{ok: false, error}`. */
export type Reply<T = {}> = ({ ok: true } & T) | { ok: false; error: WireError };

// -- socket.io: shapes ---------------------------------------------------------

export interface Participant {
  id: string;
  role: Role;
  name: string;
}

export interface ProducerInfo {
  producerId: string;
  participantId: string;
  role: Role;
  source: Source;
  kind: Kind;
  codec: string;
}

/** What one m-line of an offer carries to this client. */
export interface TrackInfo extends ProducerInfo {
  consumerId: string;
}

/** `recording` in the join reply and in every `recording-state`. */
export interface RecordingInfo {
  state: RecordingStateName;
  planned: boolean;
  reason: string | null;
  recordingId: string | null;
  retentionDays: number;
}

export interface Whisperer {
  participantId: string;
  name: string;
}

export interface Cue {
  id: string;
  by: string;
  by_name: string;
  text: string;
  icon: string | null;
  color: string | null;
  tone: boolean;
  sent_ms: SessionMs;
  state: CueStateName;
  delivered_ms: SessionMs | null;
  acknowledged_ms: SessionMs | null;
}

export interface Note {
  id: string;
  t: SessionMs;
  by: string;
  name: string;
  text: string;
  visibility: Visibility;
  /** in the join reply: this coach wrote it */
  mine?: boolean;
}

export type Counts = Record<string, number>;

export interface TallyEvent {
  category: string;
  by: string;
  t: SessionMs;
  undo: boolean;
}

/** A coach's `coaching` in the join reply (a teacher gets only `whispering`). */
export interface Coaching {
  whispering?: Whisperer[];
  prompts?: string[];
  tallyCategories?: string[];
  counts?: Counts;
  cues?: Cue[];
  notes?: Note[];
}

export interface PlaybackState {
  seq: number;
  /** how many commands the room has had (a new one: apply it) */
  command: number;
  playing: boolean;
  moving: boolean;
  /** seconds of the review video */
  position: number;
  /** server ms when `position` was true */
  at: number;
  rate: number;
  driver: string | null;
  driverName: string | null;
  waitingFor: string[];
}

export interface SessionSettings {
  recording: boolean;
  whisper_single: boolean;
  prompts: string[];
  tally_categories: string[];
}

export interface SessionJson {
  id: string;
  title: string;
  teacher_name: string;
  state: "scheduled" | "live" | "ended";
  created_at: UnixSeconds;
  scheduled_for: UnixSeconds | null;
  started_at: UnixSeconds | null;
  ended_at: UnixSeconds | null;
  settings: SessionSettings;
  kind: "lesson" | "debrief";
  recording_id: string | null;
  recording_planned: boolean;
  recording_decisions: { recording: boolean; by_role: string; by_name: string; at: UnixSeconds }[];
}

export interface JoinReply {
  participantId: string;
  role: Role;
  name: string;
  session: SessionJson;
  clockMs: SessionMs;
  iceServers: RTCIceServer[];
  iceTransportPolicy: RTCIceTransportPolicy;
  participants: Participant[];
  producers: ProducerInfo[];
  coaching: Coaching;
  recording: RecordingInfo;
  /** a debrief's owner decides its recording and can end it */
  owner: boolean;
  /** what this participant may do (the page shows only these controls) */
  permissions: Permissions;
  debrief: { recordingId: string; playback: PlaybackState } | null;
}

export interface Offer {
  negotiationId: number;
  sdp: string;
  /** mid → what the server forwards on it */
  tracks: Record<string, TrackInfo>;
  /** mid → the producer this client attaches its local track to */
  publish: Record<string, string>;
}

/** `removed`: why the server removed this participant; with `peer_failed`,
 * `cause` and `reason` (one sentence a page can show) say why media failed. */
export interface RemovedInfo {
  code: RemovalCode;
  message: string;
  cause?: string;
  reason?: string;
}

/** One way to the server the pre-lesson check tries (server/live/check.py). */
export interface CheckPath {
  id: string;
  transport: "direct" | "turn-udp" | "turn-tcp" | "turn-tls";
  iceServers: RTCIceServer[];
  iceTransportPolicy: RTCIceTransportPolicy;
  /** the TURN URL tried (null: direct) */
  url: string | null;
}

/** `check-start`'s reply. */
export interface CheckStart {
  checkId: string;
  paths: CheckPath[];
  /** what a lesson's page gets: every server at once, the lessons' policy */
  lesson: { iceServers: RTCIceServer[]; iceTransportPolicy: RTCIceTransportPolicy };
  maxVideoKbps: number;
  maxProbes: number;
  seconds: number;
}

/** What the server received on one test connection (`check-stats`). */
export interface CheckStats {
  probeId: string;
  state: "offered" | "answered" | "receiving" | "failed";
  reason: string;
  packets: number;
  bytes: number;
  receivingMs: number;
}

// -- socket.io: client → server (each acknowledged with a Reply) ----------------

/** Request name → [message, reply body]. */
export interface Requests {
  join: [{ token: string; name?: string; sessionId?: string }, JoinReply];
  leave: [{}, {}];
  publish: [{ source: Source; kind: Kind; codec?: string }, { producerId: string }];
  unpublish: [{ producerId: string }, {}];
  answer: [{ negotiationId: number; sdp: string }, {}];
  "whisper-start": [{}, {}];
  "whisper-stop": [{}, {}];
  cue: [
    { text?: string; promptIndex?: number; icon?: string; color?: string; tone?: boolean },
    { cue: Cue },
  ];
  "cue-ack": [{ cueId: string }, { cue: Cue }];
  tally: [{ category: string }, { counts: Counts }];
  "tally-undo": [{}, { counts: Counts }];
  note: [{ text: string; visibility?: Visibility }, { note: Note }];
  "note-share": [{ noteId: string; visibility: Visibility }, { note: Note }];
  "recording-plan": [{ record: boolean }, { recording: RecordingInfo }];
  "recording-pause": [{}, { recording: RecordingInfo }];
  "recording-resume": [{}, { recording: RecordingInfo }];
  "end-session": [{}, {}];
  "time-sync": [{}, { serverMs: number }];
  playback: [
    { action: "play" | "pause" | "seek" | "rate"; position?: number; rate?: number },
    { playback: PlaybackState },
  ];
  "playback-drive": [{}, { playback: PlaybackState }];
  "playback-buffering": [{ buffering: boolean }, { playback: PlaybackState }];
  "check-start": [{}, CheckStart];
  "check-probe": [{ source: "camera" | "screen" | "mic" }, { probeId: string }];
  "check-answer": [{ probeId: string; negotiationId: number; sdp: string }, {}];
  "check-stats": [{ probeId: string }, CheckStats];
  "check-stop": [{}, {}];
}
export type RequestName = keyof Requests;
export type RequestMessage<K extends RequestName> = Requests[K][0];
export type RequestReply<K extends RequestName> = Reply<Requests[K][1]>;

/** For socket.io-client's typed Socket: requests are sent with an ack (`leave` on the way out need not wait for one). */
export type ClientToServer = {
  [K in RequestName]: (msg: RequestMessage<K>, ack?: (reply: RequestReply<K>) => void) => void;
};

// -- socket.io: server → client ---------------------------------------------------

/** Event name → handler (the `cue` to a teacher comes with an ack to call once shown). */
export interface ServerToClient {
  offer: (offer: Offer) => void;
  published: (data: { producerId: string }) => void;
  "publish-failed": (data: { producerId: string; reason: string }) => void;
  "producer-added": (data: ProducerInfo) => void;
  "producer-removed": (data: { producerId: string }) => void;
  "participant-joined": (data: Participant) => void;
  "participant-left": (data: { id: string; reason: string }) => void;
  "session-ended": (data: { sessionId: string; reason?: string }) => void;
  removed: (data: RemovedInfo) => void;
  "recording-state": (data: RecordingInfo) => void;
  "server-draining": (data: { message: string }) => void;
  "whisper-state": (data: { whispering: Whisperer[] }) => void;
  cue: (cue: Cue, ack?: (reply: { ok: true }) => void) => void;
  "cue-state": (cue: Cue) => void;
  "tally-counts": (data: { counts: Counts; last: TallyEvent | null }) => void;
  note: (note: Note) => void;
  "playback-state": (state: PlaybackState) => void;
  comment: (comment: ReviewComment) => void;
  "check-offer": (offer: Offer & { probeId: string }) => void;
  "check-ended": (data: { checkId: string; reason: string }) => void;
}
export type EventName = keyof ServerToClient;

// -- HTTP API --------------------------------------------------------------------

/** `{"error": {code, message}}` of a refused HTTP call. */
export interface HttpError {
  error?: WireError;
}

export interface RecordingRow {
  id: string;
  session_id: string;
  state: string;
  started_at: UnixSeconds;
  ended_at: UnixSeconds | null;
  duration_ms: number | null;
  bytes: number | null;
  deleted_at: UnixSeconds | null;
  deleted_by: string | null;
  series: string;
  part: number;
}

export interface AuditEntry {
  at: UnixSeconds;
  action: string;
  who?: { admin?: boolean; name?: string; role?: string };
  bytes?: number;
}

/** What a page may offer its reader or participant: the access policy's
 * answer (server/access/policy.py `permissions`); pages ask nothing else. */
export interface Permissions {
  whispers: boolean;
  cues: boolean;
  tallies: boolean;
  presence: boolean;
  raw: boolean;
  delete: boolean;
  audit: boolean;
  comment: boolean;
  clip: boolean;
  debrief: boolean;
  measures: boolean;
  recomputeMeasures: boolean;
  whisper: boolean;
  sendCue: boolean;
  tally: boolean;
  note: boolean;
  decideRecording: boolean;
  endSession: boolean;
  drivePlayback: boolean;
}

/** One recording as this reader may see it (GET /api/recordings/{id}). */
export interface RecordingView {
  id: string;
  session: string;
  title: string;
  teacher_name: string | null;
  state: string;
  started_at: UnixSeconds;
  ended_at: UnixSeconds | null;
  start_ms: SessionMs | null;
  end_ms: SessionMs | null;
  duration_ms: number | null;
  tracks: Record<string, unknown>[];
  review: {
    classroom: string | null;
    offset_ms: number;
    cameras: { file: string; offset_ms?: number }[];
    whispers: { file: string; start_ms: SessionMs | null; end_ms: SessionMs | null }[];
    thumbnail: string | null;
  };
  participants: { name: string | null; role: string | null }[];
  paused_spans: unknown[];
  tally_categories: string[];
  prompts: string[];
  retention: { days: number; delete_after: UnixSeconds };
  reader: { role: Role | null; name: string | null };
  permissions: Permissions;
}

export interface Span {
  start: SessionMs;
  end: SessionMs | null;
}

export interface Timeline {
  cues: {
    id: string;
    t: SessionMs;
    text: string;
    icon: string | null;
    color: string | null;
    by: string;
    delivered_t: SessionMs | null;
    acknowledged_t: SessionMs | null;
  }[];
  whispers: (Span & { name: string; role: string })[];
  tallies: { t: SessionMs; category: string; name: string; role: string }[];
  tally_categories: string[];
  rates: {
    bin_ms: number;
    start_ms: SessionMs;
    categories: string[];
    series: Record<string, number[]>;
    /** taps before Go live: on the timeline, not in a minute */
    before_start?: number;
  } | null;
  notes: { id: string; t: SessionMs; text: string; name: string; visibility: Visibility; mine: boolean }[];
  pauses: Span[];
  presence: { t: SessionMs; type: "join" | "leave"; name: string; role: string }[];
  gaps: (Span & { source: string | null })[];
  start_ms: SessionMs;
  end_ms: SessionMs;
  /** Go live: 0:00 on the lesson's clock (the recording's first classroom media) */
  lesson_start_ms?: SessionMs;
  /** the earliest moment of the timeline (before Go live: joins, an early tally…) */
  first_ms?: SessionMs;
}

export interface ReviewComment {
  id: string;
  recording: string;
  parent: string | null;
  t: SessionMs;
  text: string;
  tag: string | null;
  visibility: Visibility;
  name: string;
  role: string;
  created_at: UnixSeconds;
  from_note: string | null;
  mine: boolean;
}

/** POST /api/recordings/{id}/comments: a new comment, or a reply, or a note shared. */
export type NewComment =
  | { t: number; text: string; visibility: Visibility; tag?: string; parent?: string }
  | { fromNote: string };

export interface Clip {
  id: string;
  recording: string;
  from_ms: SessionMs;
  to_ms: SessionMs;
  start_ms: SessionMs;
  file: string;
  state: "queued" | "making" | "done" | "failed";
  progress: number;
  error: string | null;
  bytes: number | null;
}

export interface Lesson {
  session: SessionJson;
  recordings: (RecordingRow & { thumbnail: string | null })[];
  coaches: string[];
  debriefs: { id: string; title: string; state: string; recording: string }[];
}

/** A session in the lobby's list, with who is connected now. */
export interface LiveSession extends SessionJson {
  live: {
    participants: Record<string, number>;
    clock_ms: SessionMs;
    tracks?: number;
    /** the classroom's tracks: the teacher went live */
    classroom_tracks?: number;
    recording?: string;
  } | null;
}

/** role → invite link */
export type Invites = Record<string, string>;

// -- the page's data (the template's #sidecoach-page JSON, server/pages.py) ------

/** A page an invite opens (/join?token=...): teacher, coach, observer, debrief, ended. */
export interface JoinPage {
  token: string;
  role: Role;
  name: string | null;
  sessionId: string;
  title: string;
  teacherName: string;
  /** is the lesson planned to be recorded */
  recording: boolean;
  retentionDays: number;
  /** a debrief room: the recording it watches */
  recordingId?: string;
}

/** `GET /api/lesson` (an invite): what the join screen shows before joining. */
export interface LessonBeforeJoin {
  sessionId: string;
  title: string;
  teacherName: string;
  state: string;
  /** participants by role (only for roles the policy sends presence to) */
  here?: Partial<Record<Role, number>>;
  /** the classroom's media flows (only for roles that receive it) */
  classroomLive?: boolean;
}

export interface ReviewPage {
  recordingId: string;
  retentionDays: number;
}

export interface CheckPage {
  /** where to go back to (the page the check was opened from), or null */
  back: string | null;
}

export interface LobbyPage {
  defaults: { prompts: string[]; tallyCategories: string[] };
}

// -- protocol.js names every request and event above (and no other) -------------

type Nothing<T extends never> = T;
export type EveryRequestNamed = Nothing<Exclude<keyof Requests, RequestConst>>;
export type EveryEventNamed = Nothing<Exclude<keyof ServerToClient, EventConst>>;
