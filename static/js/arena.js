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
    if (target && target.tagName === "BUTTON") return; // the focused button handles it natively
    button = poll.querySelector('[data-key="next"]');
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
