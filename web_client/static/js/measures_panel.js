// The review page's "Measures" panel: each measure of the lesson with its
// one-sentence definition, a progress bar while they are computed, and a
// button to compute them again (GET/POST /api/recordings/{id}/measures).
import { h } from "./ui.js";

/** how often the panel asks again while the measures are being computed */
const POLL_MS = 1000;

/**
 * @typedef {{ status: string, progress?: number | null, reason?: string | null,
 *   values?: any, definitions: Record<string, string> }} MeasuresBody
 */

/** @param {number | null | undefined} x @param {number} [digits] */
function fmt(x, digits = 2) {
  return x == null ? "–" : String(Math.round(x * 10 ** digits) / 10 ** digits);
}

export class MeasuresPanel {
  /**
   * @param {{ id: string, api: (method: "GET" | "POST", path: string) => Promise<any> }} review
   * @param {{ canRecompute: boolean }} opts
   */
  constructor(review, opts) {
    this.review = review;
    this.opts = opts;
    /** @type {MeasuresBody | null} */
    this.body = null;
    /** @type {number | null} */
    this.timer = null;
  }

  get url() {
    return `/api/recordings/${encodeURIComponent(this.review.id)}/measures`;
  }

  mount() {
    const panel = /** @type {HTMLElement} */ (document.querySelector("#measures-panel"));
    panel.hidden = false;
    const button = /** @type {HTMLButtonElement} */ (document.querySelector("#measures-recompute"));
    button.hidden = !this.opts.canRecompute;
    button.addEventListener("click", () => this.recompute());
    void this.refresh();
  }

  async recompute() {
    await this.review.api("POST", `${this.url}/recompute`);
    void this.refresh();
  }

  async refresh() {
    if (this.timer != null) clearTimeout(this.timer);
    this.timer = null;
    try {
      this.body = /** @type {MeasuresBody} */ (await this.review.api("GET", this.url));
    } catch {
      this.show("The measures can't be read right now.");
      return;
    }
    this.render(this.body);
    if (this.body.status === "computing" || this.body.status === "pending") {
      this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
    }
  }

  /** @param {string} text */
  show(text) {
    const status = /** @type {HTMLElement} */ (document.querySelector("#measures-status"));
    status.textContent = text;
  }

  /** @param {MeasuresBody} body */
  render(body) {
    const bar = /** @type {HTMLProgressElement} */ (document.querySelector("#measures-progress"));
    bar.hidden = body.status !== "computing";
    bar.value = body.progress ?? 0;
    const list = /** @type {HTMLElement} */ (document.querySelector("#measures"));
    if (body.status === "failed") this.show(`The measures could not be computed: ${body.reason ?? ""}`);
    else if (body.status !== "done") this.show(`Computing the measures… ${Math.round((body.progress ?? 0) * 100)} %`);
    else this.show("");
    if (body.status !== "done" || !body.values) {
      list.replaceChildren();
      return;
    }
    const d = body.definitions;
    const v = body.values;
    /** @type {[string, string, string][]} */
    const rows = [["Live minutes", fmt(v.live_minutes, 1), d.live_minutes]];
    for (const [cat, rate] of Object.entries(v.tallies.per_minute)) {
      rows.push([`${cat} per minute`, fmt(/** @type {number | null} */ (rate)), d.tally_per_minute]);
    }
    for (const [pair, ratio] of Object.entries(v.tallies.ratios)) {
      rows.push([`${pair} ratio`, fmt(/** @type {number | null} */ (ratio)), d.tally_ratio]);
    }
    const p = v.prompts;
    rows.push(["Cues per minute", fmt(p.cues_per_minute), d.cues_per_minute]);
    if ("prompts_per_minute" in p) rows.push(["Prompts per minute", fmt(p.prompts_per_minute), d.prompts_per_minute]);
    rows.push(["Acknowledged within (median, s)", fmt(p.ack_p50_s, 1), d.ack_p50_s]);
    rows.push(["Prompt uptake", p.uptake_share == null ? "–" : `${Math.round(p.uptake_share * 100)} %`, d.uptake_share]);
    rows.push(["Time to uptake (median, s)", fmt(p.uptake_median_s, 1), d.uptake_median_s]);
    for (const a of v.audio) {
      rows.push(["Speech (share of time)", `${Math.round(a.speech_share * 100)} %`, d.speech_share]);
      rows.push(["Pauses of 3 s or more", String(a.pause_count), d.pause_count]);
      rows.push(["Pause length (median, s)", fmt(a.pause_median_s, 1), d.pause_median_s]);
      rows.push(["Longest talk (s)", fmt(a.longest_talk_s, 1), d.longest_talk_s]);
    }
    list.replaceChildren(
      ...rows.map(([name, value, def]) =>
        h("div", { class: "measure" }, h("dt", {}, `${name}: ${value}`), h("dd", { class: "hint" }, def ?? "")),
      ),
    );
  }
}
