// Discux chat column: composer keys, the @ mention picker, upkeep of the live message list,
// typing and presence hints, and reconnecting the socket with ?after= so nothing is missed.
// No inline scripts anywhere: the Content-Security-Policy forbids them.
"use strict";
(() => {
  const chat = document.getElementById("chat");
  if (!chat) return;
  const roomId = chat.dataset.roomId;
  const messages = document.getElementById("messages");
  const scroller = document.getElementById("chat-scroll");
  const typingBox = document.getElementById("typing-indicator");
  const connection = document.getElementById("chat-connection");
  const agentsData = document.getElementById("chat-agents");
  const agents = agentsData ? JSON.parse(agentsData.textContent || "[]") : [];
  // An agent brought in from the composer's "isn't in this room — Add" is mentionable at once.
  document.addEventListener("discux:agent-added", (event) => {
    const { name, emoji } = event.detail || {};
    if (name && !agents.some((a) => a.name === name)) agents.push({ name, emoji, style: "" });
  });

  const TYPING_CLEAR_MS = 5000; // "X is typing…" disappears 5 s after the last keystroke
  const TYPING_SEND_MS = 2500;
  const ACTIVE_SEND_MS = 20000; // presence: "online" while the person does something
  const RETRY_CODES = [1006, 1011, 1012, 1013]; // codes the ws extension reconnects after

  let socket = null; // the ws extension's socket wrapper while open

  // ---- ids: UUIDv7 strings sort in creation order ----
  const messageItems = () =>
    Array.from(messages.children).filter((el) => el.classList.contains("message"));
  const newestId = () => {
    let newest = null;
    for (const el of messageItems()) {
      const id = el.id.slice("message-".length);
      if (!newest || id > newest) newest = id;
    }
    return newest;
  };

  // The ws extension reconnects to the URL it first read; replay from what is on screen now
  // (the server also sends what changed meanwhile, older messages included).
  if (window.htmx) {
    htmx.createWebSocket = (url) => {
      let target = url;
      const newest = newestId();
      if (newest && url.includes(`/rooms/${roomId}/ws`)) {
        const parsed = new URL(url);
        parsed.searchParams.set("after", newest);
        target = parsed.toString();
      }
      const ws = new WebSocket(target, []);
      ws.binaryType = htmx.config.wsBinaryType;
      return ws;
    };
  }

  // ---- the list: one copy of each message, in id order, a separator where a day starts ----
  let stickToBottom = true;
  const nearBottom = () =>
    scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const scrollToEnd = () => { scroller.scrollTop = scroller.scrollHeight; };
  scroller.addEventListener("scroll", () => { stickToBottom = nearBottom(); }, { passive: true });

  // A message's day is the date of its <time datetime> (UTC); the day's label starts its title,
  // "Wednesday 25 November 2026, 14:02 UTC" (templates/messages/_message.html).
  const timeOf = (message) => message.querySelector(".message-meta time");
  const dayOf = (message) => {
    const time = timeOf(message);
    return time ? time.getAttribute("datetime").slice(0, 10) : "";
  };
  const dayLabelOf = (message) => {
    const title = (timeOf(message) || {}).title || "";
    return title.slice(0, title.lastIndexOf(", "));
  };
  const separatorFor = (message) => {
    const separator = document.createElement("div");
    separator.className = "day-separator";
    separator.setAttribute("role", "separator");
    separator.dataset.day = dayOf(message);
    const label = document.createElement("span");
    label.textContent = dayLabelOf(message);
    separator.append(label);
    return separator;
  };
  const isSeparator = (el) => el && el.classList.contains("day-separator");

  function tidyMessages() {
    // A replay sends changed messages again (appended): the newest copy of each id stays.
    const newest = new Map();
    for (const el of messageItems()) newest.set(el.id, el);
    for (const el of messageItems()) if (newest.get(el.id) !== el) el.remove();
    let items = messageItems();
    if (!items.every((el, i) => i === 0 || items[i - 1].id < el.id)) {
      items.sort((a, b) => (a.id < b.id ? -1 : 1));
      items.forEach((el) => messages.append(el));
      items = messageItems();
    }
    let previousDay = null;
    for (const el of items) {
      let before = el.previousElementSibling;
      while (isSeparator(before) && isSeparator(before.previousElementSibling)) {
        before.previousElementSibling.remove();
      }
      const day = dayOf(el);
      if (day !== previousDay) {
        if (!isSeparator(before) || before.dataset.day !== day) {
          if (isSeparator(before)) before.remove();
          el.before(separatorFor(el));
        }
      } else if (isSeparator(before)) {
        before.remove();
      }
      previousDay = day;
    }
    while (isSeparator(messages.lastElementChild)) messages.lastElementChild.remove();
  }

  const listObserver = new MutationObserver((records) => {
    listObserver.disconnect(); // our own tidying is not news
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType === 1 && node.classList.contains("message")) {
          clearTyping(node.dataset.senderId);
        }
      }
    }
    tidyMessages();
    if (stickToBottom) scrollToEnd();
    listObserver.observe(messages, { childList: true });
  });

  // ---- "Ana is typing…": each hint removes itself 5 s after that person's last keystroke ----
  const typingTimers = new Map();
  function clearTyping(userId) {
    const entry = typingTimers.get(userId);
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.el.remove();
    typingTimers.delete(userId);
  }
  function tidyTyping() {
    for (const hint of Array.from(typingBox.querySelectorAll(".typing-user"))) {
      const userId = hint.dataset.userId;
      const known = typingTimers.get(userId);
      if (known && known.el === hint) continue;
      if (known) { clearTimeout(known.timer); known.el.remove(); }
      typingTimers.set(userId, {
        el: hint,
        timer: setTimeout(() => { hint.remove(); typingTimers.delete(userId); }, TYPING_CLEAR_MS),
      });
    }
  }
  if (typingBox) new MutationObserver(tidyTyping).observe(typingBox, { childList: true });

  // ---- the socket's state, shown when it matters ----
  chat.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
    connection.hidden = true;
    sendActive(true);
  });
  chat.addEventListener("htmx:wsClose", (event) => {
    socket = null;
    const closed = event.detail.event;
    connection.textContent = RETRY_CODES.includes(closed.code)
      ? "Connection lost. Reconnecting…"
      : closed.reason || "Live updates have stopped. Reload the page to see new messages.";
    connection.hidden = false;
  });
  const send = (frame) => { if (socket) socket.send(JSON.stringify(frame)); };

  let lastActive = 0;
  function sendActive(force) {
    const now = Date.now();
    if (!force && now - lastActive < ACTIVE_SEND_MS) return;
    lastActive = now;
    send({ type: "active" });
  }
  for (const kind of ["keydown", "pointerdown", "focusin"]) {
    document.addEventListener(kind, () => sendActive(false), { passive: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") sendActive(false);
  });

  // ---- the composer ----
  const textarea = () => document.getElementById("composer-text");
  let lastTyping = 0;

  function updateCount(area) {
    const counter = document.getElementById("composer-count");
    if (!counter || !area) return;
    const limit = Number(area.dataset.maxLength || 4000);
    const length = [...area.value.trim()].length; // code points, as the server counts
    if (length > limit) {
      counter.textContent = `· ${(length - limit).toLocaleString()} over the limit`;
      counter.classList.add("over-limit");
    } else {
      counter.textContent = length > limit * 0.9 ? `· ${(limit - length).toLocaleString()} left` : "";
      counter.classList.remove("over-limit");
    }
  }

  document.addEventListener("input", (event) => {
    const area = event.target;
    if (area.id !== "composer-text") return;
    updateCount(area);
    picker.update(area);
    const now = Date.now();
    if (area.value.trim() && now - lastTyping > TYPING_SEND_MS) {
      lastTyping = now;
      send({ type: "typing" });
    }
  });

  document.addEventListener("keydown", (event) => {
    const area = event.target;
    if (area.id !== "composer-text") return;
    if (picker.handleKey(event, area)) return;
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    const form = area.form;
    if (area.value.trim() && !form.classList.contains("htmx-request")) form.requestSubmit();
  });

  // After a post htmx swaps in a fresh composer: keep typing where you were. Only when the swap
  // took the focus away: the message often arrives by socket first, and whoever has already
  // moved on (Shift+Tab to its Delete button) keeps the focus where they put it.
  let refocus = false;
  let sentFrom = null; // the composer that sent; a different one in its place means it was swapped
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.id !== "composer") return;
    sentFrom = event.detail.elt;
    refocus = document.activeElement === textarea();
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    const area = textarea();
    if (!sentFrom || !area || area.form === sentFrom) return; // not the composer's swap (yet)
    sentFrom = null;
    const focusLost = !document.activeElement || document.activeElement === document.body;
    if (refocus && focusLost) {
      refocus = false;
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      updateCount(area);
    }
  });
  // Answers htmx does not swap (429, an expired form…) still say why, next to the composer.
  document.body.addEventListener("htmx:responseError", (event) => {
    if (event.detail.elt.id !== "composer") return;
    const status = event.detail.xhr.status;
    const text = status === 429
      ? "You're sending messages quickly: wait a moment, then press Send again."
      : status === 400
        ? "Your page has expired. Copy your text, reload the page and send it again."
        : `Not sent (error ${status}). Your text is still here; try again.`;
    let error = document.getElementById("composer-error");
    if (!error) {
      error = document.createElement("small");
      error.id = "composer-error";
      error.className = "field-error";
      error.setAttribute("role", "alert");
      document.querySelector("#composer .composer-field").after(error);
    }
    error.textContent = text;
  });

  // ---- @ mentions: the room's agents, filtered as you type, arrows + Enter to pick ----
  const picker = {
    options: [],
    active: 0,
    start: -1,
    list: () => document.getElementById("mention-picker"),

    query(area) {
      const before = area.value.slice(0, area.selectionStart);
      const at = before.lastIndexOf("@");
      if (at < 0 || (at > 0 && /[\p{L}\p{N}_]/u.test(before[at - 1]))) return null;
      const typed = before.slice(at + 1);
      if (typed.includes("\n") || typed.length > 100) return null;
      return { at, typed: typed.toLowerCase() };
    },

    update(area) {
      const found = agents.length ? this.query(area) : null;
      this.options = [];
      if (found) {
        const starts = agents.filter((a) => a.name.toLowerCase().startsWith(found.typed));
        const inside = agents.filter((a) => !starts.includes(a) && found.typed
          && a.name.toLowerCase().includes(found.typed));
        this.options = [...starts, ...inside];
        if ("all".startsWith(found.typed)) {
          this.options.push({ name: "all", emoji: "👥", style: `every agent in the room (${agents.length})` });
        }
        this.start = found.at;
      }
      this.active = 0;
      this.render(area);
    },

    render(area) {
      const list = this.list();
      if (!list) return;
      list.replaceChildren();
      if (!this.options.length) { this.close(area); return; }
      this.options.forEach((option, index) => {
        const item = document.createElement("li");
        item.id = `mention-option-${index}`;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", String(index === this.active));
        const emoji = document.createElement("span");
        emoji.className = "mention-emoji";
        emoji.setAttribute("aria-hidden", "true");
        emoji.textContent = option.emoji || "🤖";
        const name = document.createElement("strong");
        name.textContent = option.name;
        const style = document.createElement("small");
        style.className = "muted";
        style.textContent = option.style || "";
        item.append(emoji, name, " ", style);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault(); // keep the focus in the textarea
          this.pick(area, index);
        });
        list.append(item);
      });
      list.hidden = false;
      area.setAttribute("aria-expanded", "true");
      area.setAttribute("aria-activedescendant", `mention-option-${this.active}`);
    },

    close(area) {
      const list = this.list();
      if (list) { list.hidden = true; list.replaceChildren(); }
      this.options = [];
      if (area) {
        area.setAttribute("aria-expanded", "false");
        area.removeAttribute("aria-activedescendant");
      }
    },

    pick(area, index) {
      const option = this.options[index];
      if (!option) return;
      const caret = area.selectionStart;
      const inserted = `@${option.name} `;
      area.value = area.value.slice(0, this.start) + inserted + area.value.slice(caret);
      const position = this.start + inserted.length;
      area.setSelectionRange(position, position);
      this.close(area);
      area.focus();
      updateCount(area);
    },

    handleKey(event, area) {
      if (!this.options.length) return false;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        const step = event.key === "ArrowDown" ? 1 : -1;
        this.active = (this.active + step + this.options.length) % this.options.length;
        this.render(area);
      } else if (event.key === "Enter" || event.key === "Tab") {
        this.pick(area, this.active);
      } else if (event.key === "Escape") {
        this.close(area);
      } else {
        return false;
      }
      event.preventDefault();
      return true;
    },
  };
  document.addEventListener("focusout", (event) => {
    if (event.target.id === "composer-text") picker.close(event.target);
  });

  // ---- start ----
  tidyMessages();
  scrollToEnd();
  listObserver.observe(messages, { childList: true });
  updateCount(textarea());
})();
