// Discux page behaviour. No inline scripts: the Content-Security-Policy forbids them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
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
