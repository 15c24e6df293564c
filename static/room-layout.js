// Discux room page around the chat: the panel's tabs, the phone drawer, the Invite dialog, the
// unread divider, "N new messages ↓", one polite announcement per new message, and the keys
// (↑ edit your last message, Esc stop the agents, / search). Markup: templates/rooms/show.html.
// Nothing here moves the focus on its own: only a key or a click of the person using the page.
"use strict";
(() => {
  const page = document.querySelector(".room-page");
  if (!page) return;
  const roomId = page.dataset.roomId;
  const chat = document.getElementById("chat");
  const messages = document.getElementById("messages");
  const scroller = document.getElementById("chat-scroll");
  const me = chat ? chat.dataset.me : "";
  const narrow = window.matchMedia("(max-width: 959.98px)");

  const isEditable = (el) => el instanceof HTMLElement
    && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));

  // ---- the panel's tabs: anchors become role="tab", the other panel is [hidden] ----
  const tabs = document.querySelector(".panel-tabs");
  const tabLinks = tabs ? Array.from(tabs.querySelectorAll(".panel-tab")) : [];
  const panelOf = (tab) => document.getElementById(tab.getAttribute("aria-controls"));
  function selectTab(chosen, focus) {
    for (const tab of tabLinks) {
      const selected = tab === chosen;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      panelOf(tab).hidden = !selected;
    }
    if (focus) chosen.focus();
  }
  // The tab holding a place the URL names (#settings after saving) or a form's error.
  const tabHolding = (el) => tabLinks.find((tab) => el && panelOf(tab).contains(el));
  if (tabLinks.length) {
    tabs.querySelector(".panel-tablist").setAttribute("role", "tablist");
    for (const tab of tabLinks) {
      tab.setAttribute("role", "tab");
      panelOf(tab).setAttribute("role", "tabpanel");
      tab.addEventListener("click", (event) => { event.preventDefault(); selectTab(tab, false); });
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (!step) return;
        event.preventDefault();
        const index = (tabLinks.indexOf(tab) + step + tabLinks.length) % tabLinks.length;
        selectTab(tabLinks[index], true);
      });
    }
    const target = location.hash.length > 1 ? document.getElementById(location.hash.slice(1)) : null;
    const error = tabs.querySelector(".form-error, [aria-invalid='true']");
    selectTab(tabHolding(error) || tabHolding(target) || tabLinks[0], false);
    tabs.classList.add("tabs-ready");
  }

  // ---- the drawer (phones): the panel slides in over the chat ----
  const panel = document.getElementById("room-panel");
  const toggle = document.querySelector(".panel-toggle");
  const drawerOpen = () => panel.classList.contains("is-open");
  function setDrawer(open, returnFocus) {
    panel.classList.toggle("is-open", open);
    if (toggle) toggle.setAttribute("aria-expanded", String(open));
    if (open) panel.focus();
    else if (returnFocus && toggle && panel.contains(document.activeElement)) toggle.focus();
  }
  if (panel && toggle) {
    page.classList.add("drawer-ready");
    toggle.addEventListener("click", (event) => { event.preventDefault(); setDrawer(!drawerOpen(), true); });
    for (const close of panel.querySelectorAll("[data-closes-drawer]")) {
      close.addEventListener("click", (event) => { event.preventDefault(); setDrawer(false, true); });
    }
    // After a panel form (a redirect to #people, an error) a phone shows the drawer open.
    const target = location.hash.length > 1 ? document.getElementById(location.hash.slice(1)) : null;
    const opened = (target && panel.contains(target)) || panel.querySelector(".form-error, [aria-invalid='true']");
    if (opened && narrow.matches) setDrawer(true, false);
  }

  // ---- the Invite dialog: the room's invitations page (the link's href), fetched into a
  // <dialog> made on first use ----
  function makeDialog(title) {
    const dialog = document.createElement("dialog");
    dialog.className = "invite-dialog";
    dialog.setAttribute("aria-labelledby", "invite-dialog-title");
    const article = document.createElement("article");
    const header = document.createElement("header");
    const close = Object.assign(document.createElement("button"), { type: "button", className: "dialog-close", textContent: "×" });
    close.setAttribute("aria-label", "Close");
    close.dataset.closesDialog = "";
    const heading = Object.assign(document.createElement("h2"), { id: "invite-dialog-title", textContent: title });
    const body = Object.assign(document.createElement("div"), { id: "invite-dialog-body" });
    body.setAttribute("aria-live", "polite");
    header.append(close, heading);
    article.append(header, body);
    dialog.append(article);
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog || event.target.closest("[data-closes-dialog]")) dialog.close();
    });
    page.append(dialog);
    return dialog;
  }
  for (const opener of document.querySelectorAll("a[data-dialog-title]")) {
    if (typeof HTMLDialogElement !== "function" || !window.htmx) continue;
    let dialog = null;
    opener.addEventListener("click", (event) => {
      event.preventDefault();
      dialog = dialog || makeDialog(opener.dataset.dialogTitle);
      const body = dialog.querySelector("#invite-dialog-body");
      dialog.showModal();
      if (!body.firstElementChild) {
        htmx.ajax("GET", opener.getAttribute("href"), { target: body, swap: "innerHTML" }).then(() => {
          const field = body.querySelector("input:not([type=hidden]), select");
          // Only while nothing else was chosen since the dialog opened (its Close button).
          if (field && dialog.open && document.activeElement === dialog.querySelector("[data-closes-dialog]")) field.focus();
        });
      }
    });
  }

  if (!chat || !messages || !scroller) return bindKeys();

  // ---- where you left off: the newest message seen, per room, in this browser ----
  // The newer of two marks: the server's (data-last-read on #chat: the newest message of your
  // last view, from any device; discux/rooms/read_marks.py) and this browser's localStorage,
  // moved as you read live messages here without a request per message.
  const storageKey = `discux:last-read:${roomId}`;
  const idOf = (el) => el.id.slice("message-".length);
  const messageItems = () => Array.from(messages.querySelectorAll(":scope > article.message"));
  const readStored = () => { try { return localStorage.getItem(storageKey); } catch { return null; } };
  const store = (id) => { try { localStorage.setItem(storageKey, id); } catch { /* private mode */ } };
  const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;

  let newestSeen = "";
  for (const el of messageItems()) if (idOf(el) > newestSeen) newestSeen = idOf(el);
  const serverMark = chat.dataset.lastRead || "";
  const browserMark = readStored() || "";
  let lastRead = serverMark > browserMark ? serverMark : browserMark;

  function markRead() {
    if (document.visibilityState !== "visible" || !nearBottom()) return;
    if (newestSeen && newestSeen > lastRead) { lastRead = newestSeen; store(newestSeen); }
  }

  // The divider goes before the first message from someone else newer than the mark.
  const firstUnread = lastRead
    ? messageItems().find((el) => idOf(el) > lastRead && el.dataset.senderId !== me) : null;
  let divider = null;
  // static/chat.js re-sorts the list when the socket replays messages: the divider follows.
  function placeDivider() {
    const unread = divider && document.getElementById(firstUnread.id); // a replay brings a new copy
    if (!unread) return;
    const before = unread.previousElementSibling;
    const anchor = before && before.classList.contains("day-separator") ? before : unread;
    if (anchor.previousElementSibling !== divider) anchor.before(divider);
  }
  if (firstUnread) {
    divider = document.createElement("div");
    divider.className = "unread-divider";
    divider.id = "unread-divider";
    divider.setAttribute("role", "separator");
    divider.setAttribute("aria-label", "New messages since you were last here");
    divider.append(Object.assign(document.createElement("span"), { textContent: "New" }));
    placeDivider();
    // Start at the divider when the latest would push it out of view.
    const top = divider.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    if (top < 0 || top > scroller.clientHeight) scroller.scrollTop += top - 8;
  }
  markRead();

  // ---- pinned to the latest while you read it: a message that grows (a streaming reply, the
  // action buttons static/message-actions.js adds, an opened receipt) keeps the bottom in view ----
  if (!firstUnread) scroller.scrollTop = scroller.scrollHeight;
  let pinned = nearBottom();
  scroller.addEventListener("scroll", () => { pinned = nearBottom(); }, { passive: true });
  new ResizeObserver(() => {
    if (pinned) scroller.scrollTop = scroller.scrollHeight;
  }).observe(messages);

  // ---- "N new messages ↓" while you read further up; one polite line per new message ----
  const pill = document.getElementById("new-messages");
  const announcer = document.getElementById("chat-announcer");
  messages.setAttribute("aria-live", "off"); // the announcer speaks instead: one line, not a whole article
  let unseen = 0;
  const pending = new Set(); // agent replies still streaming: announced once they are done
  function showPill() {
    pill.hidden = unseen === 0;
    pill.textContent = `${unseen} new message${unseen === 1 ? "" : "s"} ↓`;
  }
  function toLatest() {
    scroller.scrollTop = scroller.scrollHeight;
    unseen = 0;
    showPill();
    markRead();
  }
  pill.addEventListener("click", () => {
    toLatest();
    const composer = document.getElementById("composer-text");
    if (composer) composer.focus(); // the button disappears: the focus goes on where you write
  });
  scroller.addEventListener("scroll", () => {
    if (!nearBottom()) return;
    unseen = 0;
    showPill();
    markRead();
  }, { passive: true });
  document.addEventListener("visibilitychange", markRead);

  function announce(el) {
    const sender = (el.querySelector(".sender-name") || {}).textContent || "Someone";
    const body = (el.querySelector(".message-body") || {}).textContent || "";
    const text = body.trim().replace(/\s+/g, " ");
    announcer.textContent = `${sender.trim()}: ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`;
  }

  new MutationObserver((records) => {
    const atBottom = nearBottom();
    for (const record of records) {
      for (const el of record.addedNodes) {
        if (!(el instanceof HTMLElement) || !el.matches("article.message")) continue;
        const id = idOf(el);
        const streaming = el.classList.contains("message-streaming");
        if (pending.has(id) && !streaming) { pending.delete(id); announce(el); }
        if (id <= newestSeen) continue; // a replayed or updated copy, or an earlier page
        newestSeen = id;
        if (el.dataset.senderId === me && el.classList.contains("message-own")) { toLatest(); continue; }
        if (streaming) pending.add(id); else announce(el);
        if (!atBottom) { unseen += 1; showPill(); }
      }
    }
    placeDivider();
    markRead();
  }).observe(messages, { childList: true });

  bindKeys();

  // ---- keys ----
  function lastOwnEditControl() {
    const own = messageItems().filter((el) => el.classList.contains("message-own"));
    const last = own[own.length - 1];
    if (!last) return null;
    const marked = last.querySelector("[data-edit-message], [data-action='edit'], .message-edit button, .message-edit a, button.message-edit, a.message-edit");
    if (marked) return marked;
    return Array.from(last.querySelectorAll("button, a")).find((el) => /^edit\b/i.test(
      (el.getAttribute("aria-label") || el.textContent || "").trim())) || null;
  }

  function bindKeys() {
    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.isComposing) return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const target = event.target;
      if (event.key === "ArrowUp" && target.id === "composer-text" && target.value === "" && !event.shiftKey) {
        // ↑ in the empty composer opens the edit of your last message, when it has one.
        const edit = messages ? lastOwnEditControl() : null;
        if (edit) { event.preventDefault(); edit.click(); }
      } else if (event.key === "Escape") {
        if (document.querySelector("dialog[open]")) return; // the dialog closes itself
        if (panel && drawerOpen()) { event.preventDefault(); setDrawer(false, true); return; }
        const stop = Array.from(document.querySelectorAll("#agent-status button"))
          .find((button) => button.textContent.trim() === "Stop");
        if (stop) { event.preventDefault(); stop.click(); }
      } else if (event.key === "/" && !isEditable(target)) {
        const search = document.querySelector(".room-header input[type='search']");
        if (search) { event.preventDefault(); search.focus(); }
      }
    });
  }
})();
