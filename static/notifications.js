// Unread upkeep for the open room, and opt-in browser notifications.
// - While the tab is hidden, the title counts the messages that arrived: "(3) Room · Discux".
// - While it is visible, the server is told how far you have read (POST /rooms/<id>/read), so
//   the dashboard's unread counts are right on every device.
// - With notifications turned on (Settings; the browser asks permission only on that click), a
//   hidden tab shows one when someone @mentions you or an agent answers your message.
// Data from templates/messages/_composer_feedback.html; the toggle from
// templates/settings/_notifications.html.
"use strict";
(() => {
  const STORE_KEY = "discux-browser-notifications";
  const READ_AFTER_MS = 3000; // one read report per burst of messages (a write each)
  const supported = "Notification" in window;
  const enabled = () => supported && Notification.permission === "granted"
    && localStorage.getItem(STORE_KEY) === "on";

  // ---- the toggle (Settings) ----
  const toggle = document.getElementById("browser-notifications-toggle");
  const state = document.getElementById("browser-notifications-state");
  function showState() {
    if (!toggle || !state) return;
    if (!supported) {
      state.textContent = "This browser cannot show notifications.";
      toggle.hidden = true;
      return;
    }
    toggle.hidden = false;
    if (Notification.permission === "denied") {
      state.textContent = "Notifications are blocked for this site in your browser's settings.";
      toggle.hidden = true;
    } else if (enabled()) {
      state.textContent = "On in this browser.";
      toggle.textContent = "Turn off browser notifications";
    } else {
      state.textContent = "Off in this browser.";
      toggle.textContent = "Turn on browser notifications";
    }
  }
  if (toggle) {
    toggle.addEventListener("click", async () => {
      if (enabled()) {
        localStorage.removeItem(STORE_KEY);
      } else {
        const answer = await Notification.requestPermission(); // only ever on this click
        if (answer === "granted") localStorage.setItem(STORE_KEY, "on");
      }
      showState();
    });
    showState();
  }

  // ---- the room ----
  const dataTag = document.getElementById("room-feedback-data");
  const messages = document.getElementById("messages");
  if (!dataTag || !messages) return;
  const room = JSON.parse(dataTag.textContent || "{}");
  const me = room.me || {};
  const baseTitle = document.title;
  const seen = new Set(); // message ids on screen (a replay or a completed reply is not news)
  const notified = new Set();
  let unread = 0;
  let readTimer = null;

  const isMessage = (el) => el.nodeType === 1 && el.classList.contains("message");
  const idOf = (el) => el.id.slice("message-".length);
  const isOwn = (el) => el.classList.contains("message-own");
  const nameOf = (el) => (el.querySelector(".sender-name") || {}).textContent || "Someone";
  const textOf = (el) => ((el.querySelector(".message-body") || {}).textContent || "").trim();
  for (const el of messages.children) if (isMessage(el)) seen.add(idOf(el));

  const { mentions, csrfToken } = window.discuxRoom; // static/room-helpers.js
  const newestId = () => {
    let newest = "";
    for (const el of messages.children) if (isMessage(el) && idOf(el) > newest) newest = idOf(el);
    return newest;
  };
  let reported = "";
  function reportRead() {
    readTimer = null;
    const newest = newestId();
    if (!newest || newest <= reported || document.visibilityState !== "visible") return;
    reported = newest;
    const body = new FormData();
    body.append("message_id", newest);
    // keepalive: the report still arrives when the reader is already leaving the page.
    fetch(room.read_url, { method: "POST", body, credentials: "same-origin", keepalive: true,
      headers: { "X-CSRFToken": csrfToken() } }).catch(() => { reported = ""; });
  }
  const readSoon = () => { if (!readTimer) readTimer = setTimeout(reportRead, READ_AFTER_MS); };

  const showTitle = () => {
    document.title = unread ? `(${unread}) ${baseTitle}` : baseTitle;
  };

  const mentionsMe = (text) => mentions(text, me.name);
  const answersMe = (el) => {
    const to = el.dataset.replyTo && document.getElementById(`message-${el.dataset.replyTo}`);
    return Boolean(to && isOwn(to));
  };

  function maybeNotify(el) {
    if (!enabled() || document.visibilityState === "visible" || isOwn(el)) return;
    const id = idOf(el);
    if (notified.has(id)) return;
    const agent = el.classList.contains("message-agent");
    // An agent's reply is announced once it is written, not as its empty placeholder.
    if (agent && !el.classList.contains("message-complete")) return;
    let title = null;
    if (agent && answersMe(el)) title = `${nameOf(el)} answered you in ${room.room_name}`;
    else if (el.classList.contains("message-user") && mentionsMe(textOf(el))) {
      title = `${nameOf(el)} mentioned you in ${room.room_name}`;
    }
    if (!title) return;
    notified.add(id);
    const note = new Notification(title, { body: textOf(el).slice(0, 200), tag: `discux-${id}` });
    note.addEventListener("click", () => { window.focus(); note.close(); });
  }

  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!isMessage(node)) continue;
        const id = idOf(node);
        maybeNotify(node);
        if (seen.has(id)) continue;
        seen.add(id);
        if (document.visibilityState !== "visible" && !isOwn(node)) {
          unread += 1;
          showTitle();
        }
      }
    }
    if (document.visibilityState === "visible") readSoon();
  }).observe(messages, { childList: true });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    unread = 0;
    showTitle();
    clearTimeout(readTimer);
    reportRead(); // back on the tab: everything on screen is read now
  });
  window.addEventListener("pagehide", () => {
    if (readTimer) { clearTimeout(readTimer); reportRead(); }
  });
})();
