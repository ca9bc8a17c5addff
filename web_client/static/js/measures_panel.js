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
    const p = v.prompts;
    /** @type {[string, [string, string][]][]} one definition, then its values */
    const groups = [[d.live_minutes, [["Live minutes", fmt(v.live_minutes)]]]];
    groups.push([
      d.tally_per_minute,
      Object.entries(v.tallies.per_minute).map(([cat, rate]) => [`${cat} per minute`, fmt(/** @type {number | null} */ (rate))]),
    ]);
    // the ratios of categories that were both tallied (the others say nothing)
    const ratios = Object.entries(v.tallies.ratios).filter(([, r]) => r != null && r > 0);
    if (ratios.length) groups.push([d.tally_ratio, ratios.map(([pair, r]) => [pair, fmt(/** @type {number} */ (r))])]);
    groups.push([d.cues_per_minute, [["Cues per minute", fmt(p.cues_per_minute)]]]);
    if ("prompts_per_minute" in p) groups.push([d.prompts_per_minute, [["Prompts per minute", fmt(p.prompts_per_minute)]]]);
    groups.push([d.ack_p50_s, [["Acknowledged within (median, s)", fmt(p.ack_p50_s, 1)]]]);
    groups.push([d.uptake_share, [["Prompt uptake", p.uptake_share == null ? "–" : `${Math.round(p.uptake_share * 100)} %`]]]);
    groups.push([d.uptake_median_s, [["Time to uptake (median, s)", fmt(p.uptake_median_s, 1)]]]);
    for (const a of v.audio) {
      groups.push([d.speech_share, [["Speech (share of time)", `${Math.round(a.speech_share * 100)} %`]]]);
      groups.push([d.pause_count, [["Pauses of 3 s or more", String(a.pause_count)]]]);
      groups.push([d.pause_median_s, [["Pause length (median, s)", fmt(a.pause_median_s, 1)]]]);
      groups.push([d.longest_talk_s, [["Longest talk (s)", fmt(a.longest_talk_s, 1)]]]);
    }
    list.replaceChildren(
      ...groups.map(([def, rows]) =>
        h(
          "div",
          { class: "measure" },
          ...rows.map(([name, value]) => h("dt", {}, `${name}: ${value}`)),
          h("dd", { class: "hint" }, def ?? ""),
        ),
      ),
    );
  }
}
