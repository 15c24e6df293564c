// Small helpers shared by static/composer-feedback.js and static/notifications.js.
"use strict";
window.discuxRoom = {
  // "@Name" counts when "@" starts a word and the name ends one ("@Ann" is not "@Anna").
  mentions(text, name) {
    if (!name) return false;
    const lower = text.toLowerCase();
    const wanted = `@${name.toLowerCase()}`;
    let at = lower.indexOf(wanted);
    while (at >= 0) {
      const before = at > 0 ? lower[at - 1] : " ";
      const after = lower[at + wanted.length] || " ";
      if (!/[\p{L}\p{N}_]/u.test(before) && !/[\p{L}\p{N}_]/u.test(after)) return true;
      at = lower.indexOf(wanted, at + 1);
    }
    return false;
  },
  // The page's CSRF token, from <body hx-headers> (templates/base.html).
  csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  },
};
