// The teacher's device stays up for a whole lesson: the Screen Wake Lock
// while live (asked again whenever the page is visible again: the browser
// drops the lock when the page is hidden), released when not live. What
// happened is kept for the page and its tests (state, the last refusal).

/** @typedef {"off" | "requesting" | "held" | "refused" | "unsupported"} WakeState */

export class ScreenAwake {
  constructor() {
    /** @type {WakeState} */
    this.state = "wakeLock" in navigator ? "off" : "unsupported";
    /** why the browser refused the last request ("" if it did not) */
    this.error = "";
    /** requests made (each visibility change while live makes one) */
    this.requests = 0;
    /** the page wants the screen on (it is live) */
    this.wanted = false;
    /** @type {WakeLockSentinel | null} */
    this._lock = null;
    /** @type {(() => void) | undefined} */
    this.onchange = undefined;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this._request();
    });
  }

  /** Keep the screen on (live) or let it sleep (not live). @param {boolean} on */
  async want(on) {
    this.wanted = on;
    if (on) await this._request();
    else this._release();
  }

  async _request() {
    if (this._lock?.released) this._lock = null; // let go by the browser
    if (!this.wanted || this._lock || this.state === "unsupported" || this.state === "requesting") return;
    if (document.visibilityState !== "visible") return; // asked again when visible
    this.requests += 1;
    this._set("requesting");
    try {
      const lock = await navigator.wakeLock.request("screen");
      if (!this.wanted) {
        await lock.release();
        this._set("off");
        return;
      }
      this._lock = lock;
      this.error = "";
      lock.addEventListener("release", () => {
        // the browser let go (the page was hidden): asked again when visible
        if (this._lock === lock) this._lock = null;
        if (this.state === "held") this._set("off");
      });
      this._set("held");
    } catch (err) {
      this.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this._set("refused");
    }
  }

  _release() {
    const lock = this._lock;
    this._lock = null;
    lock?.release().catch(() => {});
    if (this.state !== "unsupported") this._set("off");
  }

  /** @param {WakeState} state */
  _set(state) {
    this.state = state;
    this.onchange?.();
  }

  /** Is a lock held right now (as the browser says)? */
  get held() {
    return Boolean(this._lock && !this._lock.released);
  }
}
