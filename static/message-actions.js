// Message actions in the chat column: Copy (the message's Markdown source), Reply (a quote
// above the composer), keys in the inline edit form, and quotes that jump to what they quote.
// Edit, Regenerate and Delete are htmx attributes on the message (templates/messages/_message.html);
// without JavaScript each button opens a page with a real form instead.
"use strict";
(() => {
  const chat = document.getElementById("chat");
  if (!chat) return;
  const roomId = chat.dataset.roomId;
  const QUOTE_LENGTH = 140; // as discux.messages.rendering.QUOTE_LENGTH

  // What only works with JavaScript starts hidden in the markup.
  const reveal = (root) => {
    if (!(root instanceof Element || root instanceof Document)) return;
    for (const el of root.querySelectorAll(".message-copy[hidden], .composer-reply-cancel[hidden]")) {
      el.hidden = false;
    }
  };
  reveal(document);
  document.addEventListener("htmx:load", (event) => reveal(event.target));

  const oneLine = (text) => {
    const line = (text || "").split(/\s+/).filter(Boolean).join(" ");
    return line.length <= QUOTE_LENGTH ? line : `${line.slice(0, QUOTE_LENGTH - 1).trimEnd()}…`;
  };

  // ---- Copy: the source text, as it was written (Markdown), not the rendered page ----
  async function copyMessage(button) {
    const id = button.dataset.copyMessage;
    const label = button.textContent;
    try {
      const answer = await fetch(`/rooms/${roomId}/messages/${id}/source`,
        { headers: { Accept: "text/plain" }, credentials: "same-origin" });
      if (!answer.ok) throw new Error(String(answer.status));
      await navigator.clipboard.writeText(await answer.text());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Could not copy";
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  // ---- Reply: the quote above the composer; the post carries reply_to ----
  function startReply(article) {
    const box = document.getElementById("composer-reply");
    if (!box || !article) return false;
    const id = article.id.slice("message-".length);
    const name = article.querySelector(".sender-name");
    const body = article.querySelector(".message-body");
    box.querySelector('input[name="reply_to"]').value = id;
    box.querySelector("[data-reply-name]").textContent = name ? name.textContent : "Someone";
    box.querySelector("[data-reply-text]").textContent = oneLine(body ? body.innerText : "");
    box.hidden = false;
    const area = document.getElementById("composer-text");
    if (area) area.focus();
    return true;
  }
  function cancelReply() {
    const box = document.getElementById("composer-reply");
    if (!box) return;
    box.querySelector('input[name="reply_to"]').value = "";
    box.hidden = true;
    const area = document.getElementById("composer-text");
    if (area) area.focus();
  }

  document.body.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const copy = target.closest('[data-action="copy"]');
    if (copy) { copyMessage(copy); return; }
    const reply = target.closest('[data-action="reply"]');
    if (reply && startReply(reply.closest("article.message"))) { event.preventDefault(); return; }
    if (target.closest('[data-action="cancel-reply"]')) { cancelReply(); return; }
    // A quote jumps to the message it quotes when it is on the page (else its link loads it).
    const quote = target.closest(".message-quote");
    if (quote) {
      const original = document.getElementById(`message-${quote.dataset.quoteOf}`);
      if (original && !original.hidden) {
        event.preventDefault();
        original.scrollIntoView({ block: "center" });
        original.classList.remove("message-highlight");
        void original.offsetWidth; // restart the highlight
        original.classList.add("message-highlight");
      }
    }
  });

  // ---- the inline edit form: Enter saves, Shift+Enter a new line, Esc cancels ----
  document.body.addEventListener("keydown", (event) => {
    const area = event.target;
    if (!(area instanceof HTMLTextAreaElement) || !area.dataset.editOf) return;
    if (event.key === "Escape") {
      event.preventDefault();
      const cancel = area.form.querySelector('[data-action="cancel-edit"]');
      if (cancel) cancel.click();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      area.form.requestSubmit();
    }
  });
  // The form arrives by a swap: put the caret at the end of its text.
  document.addEventListener("htmx:load", (event) => {
    const root = event.target;
    if (!(root instanceof Element)) return;
    const area = root.querySelector("textarea[data-edit-of]");
    if (!area) return;
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  });
  // Cancel or Save puts the message back: focus goes back to its Edit button, not the page top.
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const article = event.detail.target;
    if (!(article instanceof Element) || !article.isConnected) return;
    if (article.matches("article.message-own") && !article.querySelector("textarea")) {
      const edit = article.querySelector('[data-action="edit"]');
      if (edit && document.activeElement === document.body) edit.focus();
    }
  });
})();
