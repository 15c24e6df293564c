// Discux page behaviour. No inline scripts: the Content-Security-Policy forbids them.
"use strict";

// Agent colours arrive as data-agent-color / data-swatch and are set through CSSOM: the
// Content-Security-Policy (style-src 'self') refuses style="" attributes, not element.style.
const CSS_COLOR = /^#[0-9a-f]{6}$/i;
const COLOR_PROPERTIES = { agentColor: "--agent-color", swatch: "--swatch" };

function applyColors(root) {
  if (!(root instanceof Element || root instanceof Document)) return;
  const elements = [...root.querySelectorAll("[data-agent-color], [data-swatch]")];
  if (root instanceof Element && root.matches("[data-agent-color], [data-swatch]")) elements.push(root);
  for (const element of elements) {
    for (const [key, property] of Object.entries(COLOR_PROPERTIES)) {
      const value = element.dataset[key];
      if (value && CSS_COLOR.test(value)) element.style.setProperty(property, value);
    }
  }
}

// Content htmx swaps in (pages, panels, messages over the WebSocket) fires htmx:load.
document.addEventListener("htmx:load", (event) => applyColors(event.target));
document.addEventListener("DOMContentLoaded", () => {
  applyColors(document);
  // Buttons with data-confirm ask before a destructive form submits.
  document.body.addEventListener("submit", (event) => {
    const button = event.submitter;
    const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
  // Copy buttons: data-copy-target names the input whose value is copied.
  document.body.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const input = document.getElementById(button.dataset.copyTarget);
    if (!input) return;
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
