// Keyboard voting: 1-4 press the matching choice, Space or Enter the "next" button. Typing in a field is left alone.
document.addEventListener("keydown", function (event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
  const poll = document.getElementById("poll");
  if (!poll) return;
  let button = null;
  if (/^[1-4]$/.test(event.key)) {
    button = poll.querySelector('[data-key="' + event.key + '"]');
  } else if (event.key === " " || event.key === "Enter") {
    button = poll.querySelector('[data-key="next"]');
    // Another focused button (a choice reached with Tab) keeps its own native activation.
    if (target && target.tagName === "BUTTON" && target !== button) return;
  }
  if (button && !button.disabled) {
    event.preventDefault();
    button.click();
  }
});
// After a swap, put the focus on the "next" button so Space/Enter moves on.
document.addEventListener("htmx:afterSwap", function () {
  const next = document.querySelector('#poll [data-key="next"]');
  if (next) next.focus();
});
// "Next" loads the next poll into #poll without a page reload (a plain navigation without htmx).
document.addEventListener("click", function (event) {
  const button = event.target.closest && event.target.closest("[data-next-url]");
  if (!button) return;
  event.preventDefault();
  const url = button.getAttribute("data-next-url");
  if (window.htmx && document.getElementById("poll")) {
    button.disabled = true;
    window.htmx.ajax("GET", url, { target: "#poll", swap: "innerHTML" });
  } else {
    window.location.href = url;
  }
});
