// Before anything else, every page asks: can this page use a camera and a
// microphone here? Browsers give them only to secure pages (https://, or
// http://localhost) and only where navigator.mediaDevices exists. Pages that
// need them (teacher, coach, debrief, the check: `data-needs-media` on their
// <body>) show one sentence saying what to do, and disable what needs them.

/**
 * Why this page cannot use cameras and microphones, or null.
 * @typedef {{kind: "insecure" | "unsupported", text: string, href: string | null}} MediaProblem
 */

/**
 * This page's address on the server's https:// origin, when the server
 * knows it (its public URL, or the TLS address it listens on), else null.
 * @returns {string | null}
 */
export function secureAddress() {
  const meta = document.querySelector('meta[name="sidecoach-https"]');
  const origin = meta instanceof HTMLMetaElement ? meta.content.replace(/\/+$/, "") : "";
  if (!origin.startsWith("https://")) return null;
  return origin + location.pathname + location.search;
}

/**
 * Can this page use cameras and microphones? null when it can.
 * @returns {MediaProblem | null}
 */
export function mediaProblem() {
  if (!window.isSecureContext) {
    const href = secureAddress();
    const where = href ? new URL(href).origin + location.pathname : "an https:// address (ask your admin for it)";
    return {
      kind: "insecure",
      text: `Open this page with ${where}: cameras only work on secure pages.`,
      href,
    };
  }
  if (!navigator.mediaDevices?.getUserMedia || typeof RTCPeerConnection === "undefined") {
    return {
      kind: "unsupported",
      text: "This browser can't use a camera or microphone: open this page in a recent Chrome, Edge, Firefox or Safari.",
      href: null,
    };
  }
  return null;
}

/** Show the problem on a page that needs media (its #secure-banner); returns it. */
export function showMediaProblem() {
  const problem = mediaProblem();
  const banner = document.getElementById("secure-banner");
  if (!problem || !banner || !document.body.hasAttribute("data-needs-media")) return problem;
  banner.hidden = false;
  banner.dataset.problem = problem.kind;
  banner.textContent = problem.text;
  if (problem.href) {
    // the address itself, tappable (with the invite it carries)
    const link = document.createElement("a");
    link.href = problem.href;
    link.textContent = "Open the secure page";
    link.className = "btn btn-small secure-link";
    banner.append(" ", link);
  }
  return problem;
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => showMediaProblem(), { once: true });
} else {
  showMediaProblem();
}
