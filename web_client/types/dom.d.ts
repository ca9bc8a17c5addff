// What Chromium has and TypeScript's DOM library does not (yet).

interface AudioContext {
  /** Chromium 110+: play this context on another output (the teacher's earpiece). */
  setSinkId?(sinkId: string): Promise<void>;
}
