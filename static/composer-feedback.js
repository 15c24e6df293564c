// Feedback before it is too late, as you type in the composer: "Critic isn't in this room — Add"
// for an agent you could bring in, "@all" in a room without agents, and a message over the
// length limit. The room's data comes from templates/messages/_composer_feedback.html (JSON,
// not code: the Content-Security-Policy forbids inline scripts). The server still checks all.
"use strict";
(() => {
  const dataTag = document.getElementById("room-feedback-data");
  const box = document.getElementById("composer-feedback");
  if (!dataTag || !box) return;
  const room = JSON.parse(dataTag.textContent || "{}");
  const inRoom = new Set((room.agents || []).map((name) => name.toLowerCase()));
  let addable = room.addable || [];
  const adding = new Set(); // agent ids being added right now (a second click does nothing)
  const notices = new Map(); // agent id → what happened when adding it ("joined", or why not)

  const area = () => document.getElementById("composer-text");
  const limitOf = (textarea) => Number(textarea.dataset.maxLength || 4000);
  const { mentions, csrfToken } = window.discuxRoom; // static/room-helpers.js

  const escaped = (name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  function missingAgents(text) {
    if (!text.includes("@")) return [];
    // Longest names first, each blanked out once found, so "@Code Reviewer" does not also
    // read as "@Code" (the server resolves mentions the same way).
    const known = [...(room.agents || []).map((name) => ({ name, here: true })), ...addable]
      .sort((a, b) => b.name.length - a.name.length);
    const missing = [];
    let rest = text;
    for (const agent of known) {
      if (!mentions(rest, agent.name)) continue;
      if (!agent.here && !inRoom.has(agent.name.toLowerCase())) missing.push(agent);
      rest = rest.replace(new RegExp(`@${escaped(agent.name)}`, "giu"), " ");
    }
    return missing;
  }

  function line(className, ...parts) {
    const p = document.createElement("p");
    p.className = className;
    p.append(...parts);
    return p;
  }

  function addButton(agent) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small";
    button.textContent = "Add";
    button.setAttribute("aria-label", `Add ${agent.name} to this room`);
    button.disabled = adding.has(agent.id);
    button.addEventListener("click", () => addAgent(agent));
    return button;
  }

  function render() {
    const textarea = area();
    const text = textarea ? textarea.value : "";
    const lines = [];
    for (const agent of missingAgents(text)) {
      const said = notices.get(agent.id);
      const parts = [`${agent.emoji} ${agent.name} isn't in this room`];
      if (said) parts.push(` — ${said}`);
      else if (room.may_add) parts.push(" — ", addButton(agent));
      else parts.push(": only the owner and admins can add it, so nobody will answer.");
      lines.push(line("feedback-missing", ...parts));
    }
    if (mentions(text, "all") && inRoom.size === 0) {
      lines.push(line("feedback-all", "@all asks every agent in the room, and this room has no "
        + "agents yet" + (room.may_add ? ": add one first." : ".")));
    }
    if (textarea) {
      const length = [...text.trim()].length; // code points, as the server counts
      const limit = limitOf(textarea);
      if (length > limit) {
        lines.push(line("feedback-too-long", `This message has ${length.toLocaleString()} `
          + `characters; the limit is ${limit.toLocaleString()}. Shorten it by `
          + `${(length - limit).toLocaleString()} or split it in two.`));
      }
    }
    for (const [id, said] of notices) {
      if (said.startsWith("joined")) {
        const agent = (room.joined || []).find((a) => a.id === id);
        if (agent) lines.push(line("feedback-joined", `${agent.emoji} ${agent.name} ${said}`));
      }
    }
    box.replaceChildren(...lines);
    box.hidden = lines.length === 0;
  }

  function errorIn(html) {
    const page = new DOMParser().parseFromString(html, "text/html");
    const error = page.querySelector("#agents .form-error, #agents .field-error, .form-error");
    return error ? error.textContent.trim() : "";
  }

  async function addAgent(agent) {
    if (adding.has(agent.id)) return;
    adding.add(agent.id);
    render();
    const body = new FormData();
    body.append("agent_id", agent.id);
    body.append("csrf_token", csrfToken());
    let said;
    try {
      const response = await fetch(room.add_url, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() },
      });
      if (response.ok) {
        inRoom.add(agent.name.toLowerCase());
        room.agents = [...(room.agents || []), agent.name];
        addable = addable.filter((a) => a.id !== agent.id);
        room.joined = [...(room.joined || []), agent];
        said = "joined the room. Your message will reach it.";
        document.dispatchEvent(new CustomEvent("discux:agent-added", { detail: agent }));
      } else {
        said = `not added: ${errorIn(await response.text()) || `error ${response.status}`}`;
      }
    } catch (error) {
      said = "not added: the server could not be reached. Try again.";
    }
    adding.delete(agent.id);
    notices.set(agent.id, said);
    render();
  }

  document.addEventListener("input", (event) => {
    if (event.target.id === "composer-text") render();
  });
  // After a post htmx swaps in a fresh composer: what was said about the old text is done.
  document.body.addEventListener("htmx:afterSettle", () => {
    const textarea = area();
    if (textarea && !textarea.value) {
      for (const [id, said] of notices) if (said.startsWith("joined")) notices.delete(id);
    }
    render();
  });
  render();
})();
