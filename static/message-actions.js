// Message actions in the chat column: Reply (a quote above the composer), Edit (the form in
// place of the message), Copy (the Markdown source), Regenerate (an agent reply), keys in the
// edit form, and quotes that jump to what they quote. The buttons cost the page no markup:
// they are added here to each message as it arrives (the server still decides: it refuses what
// the viewer may not do). Without JavaScript a message's time links to its page
// (/messages/<id>), which offers the same actions as links and forms.
"use strict";
(() => {
  const chat = document.getElementById("chat");
  if (!chat) return;
  const roomId = chat.dataset.roomId;
  const messages = document.getElementById("messages");
  const QUOTE_LENGTH = 140; // as discux.messages.rendering.QUOTE_LENGTH
  const csrfToken = () => {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch { return ""; }
  };
  const messageUrl = (article) => `/rooms/${roomId}/messages/${article.id.slice("message-".length)}`;

  // ---- the buttons of one message ----
  function button(action, text, label) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "message-action";
    el.dataset.action = action;
    el.textContent = text;
    el.setAttribute("aria-label", label);
    return el;
  }
  function addActions(article) {
    const header = article.querySelector(":scope > .message-meta");
    if (!header || header.querySelector(".message-actions")) return;
    if (article.classList.contains("message-replaced") || article.classList.contains("message-editing")) return;
    // Whoever has a composer may post: reply, edit their own, ask an agent again.
    const composer = document.getElementById("composer");
    const mayPost = Boolean(composer && composer.tagName === "FORM");
    const name = (header.querySelector(".sender-name") || {}).textContent || "someone";
    const own = article.classList.contains("message-own");
    const whose = own ? "your" : `${name}’s`;
    const time = (header.querySelector("time") || {}).textContent || "";
    const box = document.createElement("span");
    box.className = "message-actions";
    if (mayPost && !article.classList.contains("message-system")) {
      box.append(button("reply", "Reply", `Reply to ${whose} message, ${time}`));
    }
    if (mayPost && own) box.append(button("edit", "Edit", `Edit your message, ${time}`));
    box.append(button("copy", "Copy", `Copy the text of ${whose} message, ${time}`));
    const settled = !["message-streaming", "message-interrupted"].some((c) => article.classList.contains(c));
    if (mayPost && article.classList.contains("message-agent") && settled) {
      box.append(button("regenerate", "Regenerate", `Regenerate ${whose} reply, ${time}`));
    }
    const remove = header.querySelector(".message-delete");
    if (remove) remove.before(box); else header.append(box);
  }
  const addAll = (root) => {
    if (!(root instanceof Element || root instanceof Document)) return;
    if (root instanceof Element && root.matches("article.message")) addActions(root);
    for (const article of root.querySelectorAll("article.message")) addActions(article);
  };
  addAll(messages);
  document.addEventListener("htmx:load", (event) => addAll(event.target));

  const oneLine = (text) => {
    const line = (text || "").split(/\s+/).filter(Boolean).join(" ");
    return line.length <= QUOTE_LENGTH ? line : `${line.slice(0, QUOTE_LENGTH - 1).trimEnd()}…`;
  };

  // ---- Copy: the source text, as it was written (Markdown), not the rendered page ----
  async function copyMessage(button) {
    const label = button.textContent;
    try {
      const answer = await fetch(`${messageUrl(button.closest("article.message"))}/source`,
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
  // The strip above the composer, as templates/messages/_composer_reply.html renders it.
  function replyBox() {
    let box = document.getElementById("composer-reply");
    const form = document.getElementById("composer");
    if (box || !form || form.tagName !== "FORM") return box;
    box = document.createElement("div");
    box.id = "composer-reply";
    box.className = "composer-reply";
    const input = Object.assign(document.createElement("input"), { type: "hidden", name: "reply_to" });
    const quote = document.createElement("span");
    quote.className = "composer-reply-quote";
    const name = document.createElement("strong");
    name.dataset.replyName = "";
    const text = document.createElement("span");
    text.className = "composer-reply-text";
    text.dataset.replyText = "";
    quote.append("Replying to ", name, " ", text);
    const cancel = Object.assign(document.createElement("button"), {
      type: "button", className: "secondary outline composer-reply-cancel", textContent: "Don’t reply" });
    cancel.dataset.action = "cancel-reply";
    box.append(input, quote, cancel);
    form.querySelector('label[for="composer-text"]').before(box);
    return box;
  }

  function startReply(article) {
    const box = replyBox();
    if (!box || !article) return false;
    const cancel = box.querySelector(".composer-reply-cancel");
    if (cancel) cancel.hidden = false; // it only works with JavaScript
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

  // ---- Regenerate: the new reply comes through the socket and takes this one's place ----
  async function regenerate(button) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Asking again…";
    let problem = null;
    try {
      const answer = await fetch(`${messageUrl(button.closest("article.message"))}/regenerate`, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true", Accept: "application/json" },
      });
      if (!answer.ok) {
        const body = await answer.json().catch(() => null);
        problem = (body && body.error && body.error.message) || "Could not ask the agent again.";
      }
    } catch {
      problem = "Could not reach the server.";
    }
    if (!button.isConnected) return;
    button.disabled = false;
    button.textContent = label;
    if (problem) {
      const article = button.closest("article.message");
      let note = article.querySelector(".message-action-error");
      if (!note) {
        note = document.createElement("p");
        note.className = "message-action-error field-error";
        note.setAttribute("role", "alert");
        article.append(note);
      }
      note.textContent = problem;
    }
  }

  document.body.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const action = target.closest("button[data-action]");
    const article = action && action.closest("article.message");
    if (action && article) {
      const kind = action.dataset.action;
      if (kind === "copy") { copyMessage(action); return; }
      if (kind === "reply") { startReply(article); return; }
      if (kind === "regenerate") { regenerate(action); return; }
      if (kind === "edit" && window.htmx) {
        htmx.ajax("GET", `${messageUrl(article)}/edit`, { source: action, target: article, swap: "outerHTML" });
        return;
      }
    }
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
  // The form arrives by a swap: put the caret at the end of its text. Cancel or Save puts the
  // message back: focus goes back to its Edit button, not to the top of the page.
  let returnFocusTo = null;
  document.body.addEventListener("click", (event) => {
    const cancel = event.target instanceof Element && event.target.closest('[data-action="cancel-edit"]');
    if (cancel) returnFocusTo = cancel.closest("article.message").id;
  });
  document.body.addEventListener("submit", (event) => {
    if (event.target.matches(".message-edit-form")) returnFocusTo = event.target.closest("article.message").id;
  });
  document.addEventListener("htmx:load", (event) => {
    const root = event.target;
    if (!(root instanceof Element)) return;
    const area = root.querySelector("textarea[data-edit-of]");
    if (area) {
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      return;
    }
    const reply = root.querySelector("#composer-reply:not([hidden]) .composer-reply-cancel");
    if (reply) reply.hidden = false;
    if (returnFocusTo && root.id === returnFocusTo) {
      returnFocusTo = null;
      const edit = root.querySelector('[data-action="edit"]');
      if (edit) edit.focus();
    }
  });
})();
