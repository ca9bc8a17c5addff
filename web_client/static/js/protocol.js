// The signaling protocol's names, in one place: the socket.io requests a page
// sends (REQUEST), the events the server sends (EVENT), the transport's own
// (TRANSPORT), the error codes a reply can carry (ERROR) and why the server
// removed a participant (REMOVAL). docs/PROTOCOL.md says what each one means;
// the shapes of the messages are in web_client/types/wire.d.ts. Pages use
// these constants, never string literals (the eslint config enforces it).

/** @import { Requests, ServerToClient } from "../../types/wire" */

/**
 * Client → server requests. Each is sent with an acknowledgement and
 * answered `{ok: true, ...}` or `{ok: false, error: {code, message}}`.
 */
export const REQUEST = Object.freeze(
  /** @satisfies {Record<string, keyof Requests>} */ ({
    /** `{token, name?, sessionId?}` → the join reply (participants, producers, coaching, recording…) */
    JOIN: "join",
    /** `{}`: leave the session (disconnecting does the same) */
    LEAVE: "leave",
    /** `{source, kind, codec?}` → `{producerId}`; the server then sends an `offer` */
    PUBLISH: "publish",
    /** `{producerId}`: stop sending that track */
    UNPUBLISH: "unpublish",
    /** `{negotiationId, sdp}`: the answer to the server's `offer` */
    ANSWER: "answer",
    /** `{}` (coach): push-to-talk pressed: the whisper goes to the teacher */
    WHISPER_START: "whisper-start",
    /** `{}` (coach): push-to-talk released */
    WHISPER_STOP: "whisper-stop",
    /** `{text? | promptIndex?, icon?, color?, tone?}` (coach) → `{cue}`: an on-screen cue for the teacher */
    CUE: "cue",
    /** `{cueId}` (teacher): the teacher tapped the cue ("acknowledged") → `{cue}` */
    CUE_ACK: "cue-ack",
    /** `{category}` (coach) → `{counts}`: one tally tap */
    TALLY: "tally",
    /** `{}` (coach) → `{counts}`: undo this coach's last tap */
    TALLY_UNDO: "tally-undo",
    /** `{text, visibility?}` (coach) → `{note}`: a timestamped note */
    NOTE: "note",
    /** `{noteId, visibility}` (the note's author) → `{note}`: share a note wider */
    NOTE_SHARE: "note-share",
    /** `{record}` (teacher, debrief owner) → `{recording}`: record this session or not */
    RECORDING_PLAN: "recording-plan",
    /** `{}` (teacher, debrief owner) → `{recording}` */
    RECORDING_PAUSE: "recording-pause",
    /** `{}` (teacher, debrief owner) → `{recording}` */
    RECORDING_RESUME: "recording-resume",
    /** `{}` (teacher, debrief owner): end the session for everyone */
    END_SESSION: "end-session",
    /** `{}` → `{serverMs}`: one sample of the server's clock (debrief playback) */
    TIME_SYNC: "time-sync",
    /** `{action: play|pause|seek|rate, position?, rate?}` (the driver) → `{playback}` */
    PLAYBACK: "playback",
    /** `{}` → `{playback}`: take the wheel of the shared playback */
    PLAYBACK_DRIVE: "playback-drive",
    /** `{buffering}` → `{playback}`: this player stalled (the room holds) or is ready again */
    PLAYBACK_BUFFERING: "playback-buffering",
    /** `{}` → `{checkId, paths, lesson, …}`: start a pre-lesson check (no token; /check) */
    CHECK_START: "check-start",
    /** `{source}` → `{probeId}`: a test connection; the server then sends a `check-offer` */
    CHECK_PROBE: "check-probe",
    /** `{probeId, negotiationId, sdp}`: the answer to a `check-offer` */
    CHECK_ANSWER: "check-answer",
    /** `{probeId}` → `{state, reason, packets, bytes, receivingMs}`: what the server received */
    CHECK_STATS: "check-stats",
    /** `{}`: end the check (its test connections close) */
    CHECK_STOP: "check-stop",
  }),
);

/** Server → client events. */
export const EVENT = Object.freeze(
  /** @satisfies {Record<string, keyof ServerToClient>} */ ({
    /** `{negotiationId, sdp, tracks, publish}`: the server offers; the page answers with REQUEST.ANSWER */
    OFFER: "offer",
    /** `{producerId}`: this page's track is flowing (to the publisher only) */
    PUBLISHED: "published",
    /** `{producerId, reason}`: this page's track could not be received */
    PUBLISH_FAILED: "publish-failed",
    /** `{producerId, participantId, role, source, kind, codec}`: someone's new track */
    PRODUCER_ADDED: "producer-added",
    /** `{producerId}`: that track ended */
    PRODUCER_REMOVED: "producer-removed",
    /** `{id, role, name}` */
    PARTICIPANT_JOINED: "participant-joined",
    /** `{id, reason}` */
    PARTICIPANT_LEFT: "participant-left",
    /** `{sessionId, reason}`: the session is over for everyone */
    SESSION_ENDED: "session-ended",
    /** `{code, message}`: the server removed this participant (codes in REMOVAL) */
    REMOVED: "removed",
    /** `{state, planned, reason, recordingId, retentionDays}` */
    RECORDING_STATE: "recording-state",
    /** `{message}`: the server is shutting down; the page reconnects when it is back */
    SERVER_DRAINING: "server-draining",
    /** `{whispering: [{participantId, name}]}` (teacher and coaches) */
    WHISPER_STATE: "whisper-state",
    /** a cue, to the teacher, with an ack the page calls once the cue is shown ("delivered") */
    CUE: "cue",
    /** a cue's `{id, state, sent_ms, delivered_ms, acknowledged_ms, …}` (coaches) */
    CUE_STATE: "cue-state",
    /** `{counts, last: {category, by, t, undo}}` (coaches) */
    TALLY_COUNTS: "tally-counts",
    /** `{id, t, by, name, text, visibility}`: a note shared with this coach */
    NOTE: "note",
    /** the debrief room's shared playback: `{seq, command, playing, moving, position, at, rate, driver…}` */
    PLAYBACK_STATE: "playback-state",
    /** a review comment added to the recording a debrief room watches */
    COMMENT: "comment",
    /** `{probeId, negotiationId, sdp, publish, tracks}`: a check's test connection offers to receive */
    CHECK_OFFER: "check-offer",
    /** `{checkId, reason}`: the check ran out of time; its test connections are closed */
    CHECK_ENDED: "check-ended",
  }),
);

/** The socket.io transport's own events (a client may not send these). */
export const TRANSPORT = Object.freeze({
  CONNECT: "connect",
  CONNECT_ERROR: "connect_error",
  DISCONNECT: "disconnect",
});

/** Error codes in `{ok: false, error: {code, message}}` (socket.io) and `{error: {code, message}}` (HTTP). */
export const ERROR = Object.freeze({
  // -- made by this page's Connection, never sent by the server
  /** the socket is not connected right now */
  OFFLINE: "offline",
  /** the server did not answer within the call's timeout */
  TIMEOUT: "timeout",

  // -- any message
  /** a payload that fails its schema, or a second payload */
  INVALID_MESSAGE: "invalid_message",
  /** a message (> 64 KiB) or an SDP (> 48 KiB) too large */
  MESSAGE_TOO_LARGE: "message_too_large",
  /** more than the message rate allows (30/s sustained, burst 60) */
  RATE_LIMITED: "rate_limited",
  /** an event name the server does not know */
  UNKNOWN_EVENT: "unknown_event",
  /** `connect`, `disconnect`, `connect_error` sent as messages */
  RESERVED_EVENT: "reserved_event",
  /** the role (or the participant) may not do that */
  FORBIDDEN: "forbidden",
  /** a bug on the server; the request changed nothing */
  INTERNAL: "internal",

  // -- joining
  /** the invite (or admin token) is not valid, or the socket has not joined yet */
  UNAUTHORIZED: "unauthorized",
  /** the invite (or admin token) has expired */
  TOKEN_EXPIRED: "token_expired",
  /** the session does not exist (any more) */
  SESSION_NOT_FOUND: "session_not_found",
  /** the session has ended */
  SESSION_ENDED: "session_ended",
  /** the invite is for another session than the page's */
  WRONG_SESSION: "wrong_session",
  /** the session is full (a seat is always kept for the teacher) */
  LIMIT_REACHED: "limit_reached",
  /** this socket has joined already */
  ALREADY_JOINED: "already_joined",
  /** the socket closed while its join was in flight */
  DISCONNECTED: "disconnected",
  /** the server is shutting down: retry in a moment (the page does) */
  SERVER_DRAINING: "server_draining",
  /** several nodes: the node hosting the lesson is not answering: retry */
  NODE_UNAVAILABLE: "node_unavailable",
  /** the participant is no longer in the session */
  NOT_JOINED: "not_joined",

  // -- media
  /** an answer the server cannot apply (the offer stays open) */
  NEGOTIATION_FAILED: "negotiation_failed",
  /** an answer to an offer that is no longer open */
  STALE_ANSWER: "stale_answer",
  /** a codec the server does not forward */
  UNSUPPORTED_CODEC: "unsupported_codec",
  /** a producer id this participant does not have */
  UNKNOWN_PRODUCER: "unknown_producer",

  // -- bug-in-ear
  /** the session allows one whisperer at a time, and another coach is whispering */
  WHISPER_BUSY: "whisper_busy",
  /** this coach has no whisper track published (yet) */
  NO_WHISPER_TRACK: "no_whisper_track",
  /** no such cue or prompt, or a cue without text */
  UNKNOWN_CUE: "unknown_cue",
  /** a tally category the session does not have */
  UNKNOWN_CATEGORY: "unknown_category",
  /** this coach has no tally tap to undo */
  NOTHING_TO_UNDO: "nothing_to_undo",
  /** no such note (of this coach) */
  UNKNOWN_NOTE: "unknown_note",

  // -- recording
  /** recording-pause while nothing is being recorded */
  NOT_RECORDING: "not_recording",
  /** recording-resume while the recording is not paused */
  NOT_PAUSED: "not_paused",
  /** HTTP: the recording is still being made (e.g. delete while recording) */
  RECORDING_IN_PROGRESS: "recording_in_progress",
  /** HTTP: no such recording, or no such file in it */
  RECORDING_NOT_FOUND: "recording_not_found",

  // -- WHIP/WHEP (HTTP media for OBS, encoders, players)
  /** a valid token of another kind (WHIP: a camera token; WHEP: an observer invite) */
  WRONG_TOKEN_KIND: "wrong_token_kind",
  /** the camera token was revoked */
  TOKEN_REVOKED: "token_revoked",
  /** a method the WHIP/WHEP endpoint or resource does not support */
  METHOD_NOT_ALLOWED: "method_not_allowed",
  /** a PATCH whose If-Match is not the resource's ETag */
  PRECONDITION_FAILED: "precondition_failed",
  /** a body that is not application/sdp (or a trickle-ice-sdpfrag) */
  UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
  /** an SDP offer the server cannot take */
  UNACCEPTABLE_OFFER: "unacceptable_offer",
  /** an ICE restart: aiortc cannot restart ICE */
  ICE_RESTART_UNSUPPORTED: "ice_restart_unsupported",

  // -- HTTP API and the server's own state
  /** HTTP: no such comment, note, clip or export */
  NOT_FOUND: "not_found",
  /** a session state change that is not allowed (e.g. ending an ended session) */
  INVALID_STATE: "invalid_state",
  /** the session store is closing (the server is stopping) */
  STORE_CLOSED: "store_closed",
  /** several nodes: the cluster failed (base code) */
  CLUSTER_ERROR: "cluster_error",
  /** several nodes: Redis is not answering */
  REDIS_UNAVAILABLE: "redis_unavailable",
  /** several nodes: a node link request the node does not know */
  UNKNOWN_REQUEST: "unknown_request",
  /** the request does not fit the current state (base code) */
  CONFLICT: "conflict",
  /** something the server needs is not there right now: retry (base code) */
  UNAVAILABLE: "unavailable",
  /** wrong e-mail or password */
  SIGN_IN_FAILED: "sign_in_failed",
  /** the route needs a signed-in person */
  NOT_SIGNED_IN: "not_signed_in",
  /** the district provider's answer was refused */
  OIDC_FAILED: "oidc_failed",
  /** too many wrong passwords, or sign-ins from one address: wait */
  ACCOUNT_LOCKED: "account_locked",
  /** an admin disabled this account */
  ACCOUNT_DISABLED: "account_disabled",
  /** an admin set this password: change it first */
  PASSWORD_CHANGE_REQUIRED: "password_change_required",
  /** a signed-in change without the page's CSRF token, or from another site */
  CSRF_FAILED: "csrf_failed",
  /** a teacher outside the coach's caseload */
  NOT_IN_CASELOAD: "not_in_caseload",
  /** no such person, group or calendar feed */
  PERSON_NOT_FOUND: "person_not_found",
  /** that school, e-mail or provider account exists */
  ALREADY_EXISTS: "already_exists",
  /** never sent: a setting is wrong at start-up */
  CONFIG_ERROR: "config_error",
});

/** `removed {code, message}`: why the server removed this participant. */
export const REMOVAL = Object.freeze({
  /** the media connection failed, or an offer went unanswered: rejoin */
  PEER_FAILED: "peer_failed",
  /** the same invite joined again elsewhere: rejoining would take the seat back */
  REPLACED: "replaced",
  /** several nodes: the lesson continues on another node: rejoin */
  MOVED: "moved",
  /** the person signed out or was disabled: do not rejoin */
  SIGNED_OUT: "signed_out",
});

/** @typedef {typeof ERROR[keyof typeof ERROR]} ErrorCode */
/** @typedef {typeof REMOVAL[keyof typeof REMOVAL]} RemovalCode */
/** @typedef {typeof REQUEST[keyof typeof REQUEST]} RequestName */
/** @typedef {typeof EVENT[keyof typeof EVENT]} EventName */
