// Agent form: emoji and colour presets, and "Try it" reading the streamed reply.
// No inline scripts or handlers: the Content-Security-Policy forbids them.
"use strict";

const HEX_COLOR = /^#[0-9a-f]{6}$/i;

function setPressed(group, selector, value) {
  for (const button of group.querySelectorAll(selector)) {
    const own = button.dataset.emoji || button.dataset.color;
    button.setAttribute("aria-pressed", String(own.toUpperCase() === value.toUpperCase()));
  }
}

function setUpLook(form) {
  const emojiInput = form.querySelector("input[name=emoji]");
  const colorInput = form.querySelector("input[name=color]");
  const picker = form.querySelector("[data-color-picker]");
  const preview = form.querySelector("[data-agent-preview]");
  if (!emojiInput || !colorInput) return;

  const showEmoji = () => {
    if (preview) preview.textContent = emojiInput.value.trim() || "🤖";
    setPressed(form, "[data-emoji]", emojiInput.value.trim());
  };
  const showColor = () => {
    const value = colorInput.value.trim();
    if (!HEX_COLOR.test(value)) return;
    if (picker) picker.value = value.toLowerCase();
    if (preview) preview.style.setProperty("--agent-color", value);
    setPressed(form, "[data-color]", value);
  };

  form.addEventListener("click", (event) => {
    const emojiButton = event.target.closest("[data-emoji]");
    if (emojiButton) {
      emojiInput.value = emojiButton.dataset.emoji;
      showEmoji();
      return;
    }
    const colorButton = event.target.closest("[data-color]");
    if (colorButton) {
      colorInput.value = colorButton.dataset.color;
      showColor();
    }
  });
  emojiInput.addEventListener("input", showEmoji);
  colorInput.addEventListener("input", showColor);
  if (picker) {
    picker.addEventListener("input", () => {
      colorInput.value = picker.value.toUpperCase();
      showColor();
    });
  }
}

// Server-sent events arrive as "event: name\ndata: {json}" blocks separated by a blank line.
function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return null;
  try {
    return { name, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}

function describeFailure(response, body) {
  try {
    const parsed = JSON.parse(body);
    if (parsed && parsed.error && parsed.error.message) return parsed.error.message;
  } catch {
    // not JSON: fall through to the status line
  }
  return `The server answered ${response.status}. Try again.`;
}

function setUpTry(form) {
  const button = form.querySelector("[data-try-url]");
  const output = document.getElementById("try-output");
  if (!button || !output) return;
  let controller = null;

  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (controller) controller.abort();
    controller = new AbortController();

    const box = document.createElement("div");
    box.className = "try-reply";
    const text = document.createElement("div");
    text.className = "try-reply-text";
    text.dataset.streaming = "true";
    const meta = document.createElement("small");
    meta.className = "muted try-meta";
    meta.textContent = "Waiting for the reply…";
    box.append(text, meta);
    output.replaceChildren(box);

    const showError = (message) => {
      const error = document.createElement("p");
      error.className = "try-error";
      error.setAttribute("role", "alert");
      error.textContent = message;
      box.insertBefore(error, meta);
      meta.textContent = "";
    };

    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.tryUrl, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "text/event-stream, application/json;q=0.9" },
        credentials: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        showError(describeFailure(response, await response.text()));
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (!event) continue;
          if (event.name === "start") {
            meta.textContent = `Replying via ${event.data.provider}…`;
          } else if (event.name === "delta") {
            text.append(event.data.text);
          } else if (event.name === "error") {
            showError(event.data.message);
          } else if (event.name === "done") {
            const seconds = Number(event.data.seconds).toFixed(1);
            const confidence = event.data.confidence;
            meta.textContent = confidence == null
              ? `${seconds} s`
              : `${seconds} s · confidence ${Math.round(confidence * 100)}%`;
          }
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") showError("The connection to Discux was lost. Try again.");
    } finally {
      delete text.dataset.streaming;
      button.removeAttribute("aria-busy");
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("[data-agent-form]")) {
    setUpLook(form);
    setUpTry(form);
  }
});
