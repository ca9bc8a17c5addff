// The comments panel of the review page and the debrief room: the list in
// threads (renderComments) and the form that adds a comment at the current
// moment, or a reply, with a tag and who may see it.

import { renderComments } from "./review_core.js";
import { $, clock, h, toast } from "./ui.js";

export class CommentPanel {
  /**
   * @param review a loaded Review
   * @param opts.nowMs () => session ms the player shows
   * @param opts.onSeek (ms) => go there
   * @param opts.onChange () => the comments changed (redraw the timeline)
   */
  constructor(review, { nowMs, onSeek, onChange }) {
    this.review = review;
    this.nowMs = nowMs;
    this.onSeek = onSeek;
    this.onChange = onChange;
    this.replyTo = null;
  }

  mount({ canComment }) {
    const tl = this.review.timeline || {};
    const tags = [...(tl.tally_categories || []), ...(this.review.view.prompts || [])];
    $("#comment-tag").append(...tags.map((t) => h("option", { value: t }, t)));
    $("#comment-form").hidden = !canComment;
    this.canComment = canComment;
    $("#comment-form").addEventListener("submit", (e) => this.post(e));
    $("#cancel-reply").addEventListener("click", () => this.cancelReply());
    this.render();
  }

  /** The form's "Comment at m:ss" follows the player. */
  showTime() {
    $("#comment-at").textContent = clock(this.nowMs());
  }

  render() {
    renderComments($("#comments"), this.review, {
      onSeek: this.onSeek,
      onReply: (c) => this.reply(c),
      canReply: this.canComment,
    });
  }

  /** A comment arrived (from this page or from someone else in the room). */
  added(comment) {
    if (this.review.merge(comment)) this.changed();
  }

  changed() {
    this.render();
    this.onChange?.();
  }

  reply(comment) {
    this.replyTo = comment;
    $("#replying").hidden = false;
    $("#replying").textContent = `Replying to ${comment.name} at ${clock(comment.t)}`;
    $("#cancel-reply").hidden = false;
    $("#comment-text").focus();
  }

  cancelReply() {
    this.replyTo = null;
    $("#replying").hidden = true;
    $("#cancel-reply").hidden = true;
  }

  async post(e) {
    e.preventDefault();
    const text = $("#comment-text").value.trim();
    if (!text) return;
    const body = { t: Math.round(this.nowMs()), text, visibility: $("#comment-visibility").value };
    if ($("#comment-tag").value) body.tag = $("#comment-tag").value;
    if (this.replyTo) body.parent = this.replyTo.id;
    try {
      await this.review.addComment(body);
      $("#comment-text").value = "";
      this.cancelReply();
      this.changed();
    } catch (err) {
      toast(`Comment not saved: ${err.message}`, "error");
    }
  }
}
