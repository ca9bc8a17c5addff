// The comments panel of the review page and the debrief room: the list in
// threads (renderComments) and the form that adds a comment at the current
// moment, or a reply, with a tag and who may see it.

import { renderComments } from "./review_core.js";
import { $, errorText, h, toast } from "./ui.js";

/** @import { NewComment, ReviewComment, Visibility } from "../../types/wire" */
/** @import { Review } from "./review_core.js" */

export class CommentPanel {
  /**
   * @param {Review} review a loaded Review
   * @param {object} opts
   * @param {() => number} opts.nowMs session ms the player shows
   * @param {(ms: number) => void} opts.onSeek go there
   * @param {() => void} opts.onChange the comments changed (redraw the timeline)
   */
  constructor(review, { nowMs, onSeek, onChange }) {
    this.review = review;
    this.nowMs = nowMs;
    this.onSeek = onSeek;
    this.onChange = onChange;
    /** @type {ReviewComment | null} */
    this.replyTo = null;
    this.canComment = false;
  }

  /** @param {{canComment: boolean}} opts */
  mount({ canComment }) {
    const tl = this.review.timeline;
    const tags = [...(tl?.tally_categories || []), ...(this.review.view?.prompts || [])];
    $("#comment-tag").append(...tags.map((t) => h("option", { value: t }, t)));
    $("#comment-form").hidden = !canComment;
    this.canComment = canComment;
    $("#comment-form").addEventListener("submit", (e) => this.post(e));
    $("#cancel-reply").addEventListener("click", () => this.cancelReply());
    this.render();
  }

  /** The form's "Comment at m:ss" follows the player. */
  showTime() {
    $("#comment-at").textContent = this.review.at(this.nowMs());
  }

  render() {
    renderComments($("#comments"), this.review, {
      onSeek: this.onSeek,
      onReply: (c) => this.reply(c),
      canReply: this.canComment,
    });
  }

  /**
   * A comment arrived (from this page or from someone else in the room).
   * @param {ReviewComment} comment
   */
  added(comment) {
    if (this.review.merge(comment)) this.changed();
  }

  changed() {
    this.render();
    this.onChange?.();
  }

  /** @param {ReviewComment} comment */
  reply(comment) {
    this.replyTo = comment;
    $("#replying").hidden = false;
    $("#replying").textContent = `Replying to ${comment.name} at ${this.review.at(comment.t)}`;
    $("#cancel-reply").hidden = false;
    $("#comment-text").focus();
  }

  cancelReply() {
    this.replyTo = null;
    $("#replying").hidden = true;
    $("#cancel-reply").hidden = true;
  }

  /** @param {SubmitEvent} e */
  async post(e) {
    e.preventDefault();
    const text = $("#comment-text", HTMLTextAreaElement).value.trim();
    if (!text) return;
    const visibility = /** @type {Visibility} */ ($("#comment-visibility", HTMLSelectElement).value);
    /** @type {NewComment & {tag?: string, parent?: string}} */
    const body = { t: Math.round(this.nowMs()), text, visibility };
    const tag = $("#comment-tag", HTMLSelectElement).value;
    if (tag) body.tag = tag;
    if (this.replyTo) body.parent = this.replyTo.id;
    try {
      await this.review.addComment(body);
      $("#comment-text", HTMLTextAreaElement).value = "";
      this.cancelReply();
      this.changed();
    } catch (err) {
      toast(`Comment not saved: ${errorText(err)}`, "error");
    }
  }
}
