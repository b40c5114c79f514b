// Keyboard voting: 1-4 press the matching choice (or, while "Rank all four" is open, give that image the next
// place), Space or Enter the "next" button, R the free duel's "same prompt again", F the full-size view of the
// image under the pointer (else the first). Typing in a field is left alone.
document.addEventListener("keydown", function (event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (arenaViewerKey(event)) return;
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
  const poll = document.getElementById("poll");
  if (!poll) return;
  let button = null;
  const ranking = poll.querySelector("details.rank-all[open]");
  if (/^[1-4]$/.test(event.key) && ranking) {
    const slot = poll.querySelectorAll(".slot")[Number(event.key) - 1];
    if (slot) { event.preventDefault(); arenaRankToggle(slot); }
    return;
  }
  if (/^[1-4]$/.test(event.key)) {
    button = poll.querySelector('[data-key="' + event.key + '"]');
  } else if (event.key === "r" || event.key === "R") {
    button = poll.querySelector('[data-key="again"]');
  } else if (event.key === "f" || event.key === "F") {
    const hovered = poll.querySelector(".slot:hover img[data-zoomable], .reveal .slot:hover img");
    const img = hovered || (target && target.matches && target.matches("img[data-zoomable]") ? target : null)
      || poll.querySelector("img[data-zoomable], .reveal .slot img");
    if (img) { event.preventDefault(); arenaViewerOpen(img); }
    return;
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

// --- the full-size view: click or tap an image (or press F); click to zoom, arrows for the others, Esc back ---
let arenaViewer = null;
function arenaViewerImages() {
  return Array.from(document.querySelectorAll("#poll .slot img"));
}
function arenaViewerOpen(img) {
  arenaViewerClose();
  const images = arenaViewerImages();
  const box = document.createElement("div");
  box.className = "viewer";
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", "full-size image");
  box.innerHTML = '<div class="viewer-bar"><span class="viewer-title"></span>' +
    '<span class="viewer-hint">click: zoom · ←/→: other image · Esc: back</span>' +
    '<button type="button" class="viewer-close" aria-label="close">✕ <kbd>Esc</kbd></button></div>' +
    '<div class="viewer-stage"><img alt=""></div>';
  document.body.appendChild(box);
  arenaViewer = { box: box, index: Math.max(0, images.indexOf(img)), images: images, zoom: false, opener: img };
  box.querySelector(".viewer-close").addEventListener("click", arenaViewerClose);
  box.querySelector(".viewer-stage").addEventListener("click", function (event) {
    if (event.target.tagName === "IMG") { arenaViewer.zoom = !arenaViewer.zoom; arenaViewerShow(); }
    else arenaViewerClose();
  });
  document.body.classList.add("viewer-open");
  arenaViewerShow();
  box.querySelector(".viewer-close").focus();
}
function arenaViewerShow() {
  const v = arenaViewer;
  const src = v.images[v.index];
  const img = v.box.querySelector(".viewer-stage img");
  img.src = src.currentSrc || src.src;
  img.alt = src.alt;
  v.box.classList.toggle("zoomed", v.zoom);
  v.box.querySelector(".viewer-title").textContent = src.alt + " (" + src.getAttribute("width") + "×" + src.getAttribute("height") + ")";
}
function arenaViewerClose() {
  if (!arenaViewer) return;
  const opener = arenaViewer.opener;
  arenaViewer.box.remove();
  arenaViewer = null;
  document.body.classList.remove("viewer-open");
  if (opener && document.contains(opener)) opener.focus();
}
function arenaViewerKey(event) {
  if (!arenaViewer) return false;
  const v = arenaViewer;
  if (event.key === "Escape" || event.key === "f" || event.key === "F") arenaViewerClose();
  else if (event.key === "ArrowRight") { v.index = (v.index + 1) % v.images.length; arenaViewerShow(); }
  else if (event.key === "ArrowLeft") { v.index = (v.index + v.images.length - 1) % v.images.length; arenaViewerShow(); }
  else if (event.key === "+" || event.key === "=" || event.key === "z") { v.zoom = !v.zoom; arenaViewerShow(); }
  else if (event.key !== "Tab") return true;  // nothing else reaches the poll behind the view
  else return false;
  event.preventDefault();
  return true;
}

// --- ranking by clicking the images in order (the selects stay the form's fields and its no-script fallback) ---
function arenaRankForm(el) { return el.closest("form[data-rank-form]"); }
function arenaRankSelects(form) { return Array.from(form.querySelectorAll("select[data-place-for]")); }
function arenaRankToggle(slot) {
  const form = arenaRankForm(slot);
  if (!form) return;
  const selects = arenaRankSelects(form);
  const mine = form.querySelector('select[data-place-for="' + slot.dataset.position + '"]');
  if (mine.value) {
    mine.value = "";
  } else {
    const taken = new Set(selects.map(function (s) { return s.value; }).filter(Boolean));
    for (let place = 1; place <= selects.length; place++) {
      if (!taken.has(String(place))) { mine.value = String(place); break; }
    }
  }
  arenaRankShow(form);
}
function arenaRankProblem(form) {
  const values = arenaRankSelects(form).map(function (s) { return s.value; });
  const given = values.filter(Boolean);
  if (given.length < values.length) return "Give every image a place: " + given.length + " of " + values.length + " placed.";
  if (new Set(given).size < given.length) return "Each place can be given once: two images share a place.";
  return "";
}
function arenaRankShow(form) {
  arenaRankSelects(form).forEach(function (select) {
    const slot = form.querySelector('.slot[data-position="' + select.dataset.placeFor + '"]');
    if (!slot) return;
    slot.classList.toggle("placed", !!select.value);
    slot.querySelector(".place-badge").textContent = select.value ? select.value : "";
  });
  const status = form.querySelector(".rank-status");
  const problem = arenaRankProblem(form);
  if (status) status.textContent = problem || "All four placed: send the ranking.";
  const submit = form.querySelector("[data-submit-ranking]");
  if (submit) submit.classList.toggle("incomplete", !!problem);
}
document.addEventListener("click", function (event) {
  const t = event.target;
  if (!t.closest) return;
  if (t.closest("[data-enlarge]")) {
    event.preventDefault();
    arenaViewerOpen(t.closest(".slot").querySelector("img"));
    return;
  }
  if (t.closest("[data-clear-ranking]")) {
    const form = arenaRankForm(t);
    arenaRankSelects(form).forEach(function (s) { s.value = ""; });
    arenaRankShow(form);
    return;
  }
  const img = t.closest("#poll .slot img");
  if (img) {
    const form = arenaRankForm(img);
    if (form && form.querySelector("details.rank-all[open]")) arenaRankToggle(img.closest(".slot"));
    else arenaViewerOpen(img);
  }
});
document.addEventListener("keydown", function (event) {
  // Enter on a focused poll image opens it (the image is focusable for keyboard users).
  if (event.key === "Enter" && event.target.matches && event.target.matches("img[data-zoomable]") && !arenaViewer) {
    event.preventDefault();
    event.stopImmediatePropagation();
    arenaViewerOpen(event.target);
  }
}, true);
document.addEventListener("change", function (event) {
  if (event.target.matches && event.target.matches("select[data-place-for]")) arenaRankShow(arenaRankForm(event.target));
});
document.addEventListener("toggle", function (event) {
  if (event.target.matches && event.target.matches("details.rank-all")) arenaRankShow(arenaRankForm(event.target));
}, true);
// A ranking is checked here before it is sent: nothing leaves the page until every image has its own place.
function arenaRankCheck(event) {
  const form = event.target.closest ? event.target.closest("form[data-rank-form]") : null;
  if (!form || !form.choice || form.choice.value !== "ranking") return;
  const problem = arenaRankProblem(form);
  if (problem) {
    event.preventDefault();
    event.stopPropagation();
    arenaRankShow(form);
    const status = form.querySelector(".rank-status");
    if (status) { status.textContent = problem; status.classList.add("error-text"); }
  }
}
document.addEventListener("submit", arenaRankCheck, true);
document.addEventListener("htmx:confirm", function (event) {
  const form = event.target;
  if (form.matches && form.matches("form[data-rank-form]") && form.choice.value === "ranking" && arenaRankProblem(form)) {
    event.preventDefault();
    arenaRankCheck({ target: form, preventDefault: function () {}, stopPropagation: function () {} });
  }
});
function arenaRankInit() {
  document.querySelectorAll("form[data-rank-form]").forEach(arenaRankShow);
}
document.addEventListener("DOMContentLoaded", arenaRankInit);
document.addEventListener("htmx:afterSettle", arenaRankInit);

// The "how to judge" panel: dismissed once, it stays closed on this browser.
document.addEventListener("click", function (event) {
  const button = event.target.closest && event.target.closest("[data-dismiss-guide]");
  if (!button) return;
  const panel = button.closest(".guide");
  try { localStorage.setItem("arena.guide.dismissed", "1"); } catch (e) { /* private mode: closed for this page */ }
  if (panel) panel.hidden = true;
});
document.addEventListener("DOMContentLoaded", function () {
  let dismissed = false;
  try { dismissed = localStorage.getItem("arena.guide.dismissed") === "1"; } catch (e) { /* none */ }
  document.querySelectorAll(".guide").forEach(function (panel) { panel.hidden = dismissed; });
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
// Live clocks between two polls: "N s elapsed" counts up, an ETA counts down (each anchored to when this
// browser received the number, so the two machines' clocks need not agree).
function arenaDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + String(seconds % 60).padStart(2, "0") + " s";
  return Math.floor(seconds / 3600) + " h " + String(Math.floor((seconds % 3600) / 60)).padStart(2, "0") + " min";
}
function arenaTick() {
  const now = Date.now();
  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    if (!el.dataset.seenAt) el.dataset.seenAt = String(now);
    const left = Number(el.dataset.countdown) - (now - Number(el.dataset.seenAt)) / 1000;
    el.textContent = left > 0.5 ? arenaDuration(left) : "any moment";
  });
  document.querySelectorAll("[data-elapsed]").forEach(function (el) {
    if (!el.dataset.seenAt) el.dataset.seenAt = String(now);
    el.textContent = arenaDuration(Number(el.dataset.elapsed) + (now - Number(el.dataset.seenAt)) / 1000);
  });
}
setInterval(arenaTick, 1000);
document.addEventListener("htmx:afterSettle", arenaTick);
// The enlarge button and the ranking badge sit on the picture's own corners (the picture is centred in its cell).
function arenaPlaceOverlays() {
  document.querySelectorAll("#poll .slot .frame").forEach(function (frame) {
    const img = frame.querySelector("img");
    if (!img || !img.offsetWidth) return;
    const right = frame.clientWidth - (img.offsetLeft + img.offsetWidth);
    const enlarge = frame.querySelector(".enlarge");
    if (enlarge) { enlarge.style.right = (right + 4) + "px"; enlarge.style.top = (img.offsetTop + 4) + "px"; }
    const badge = frame.querySelector(".place-badge");
    if (badge) { badge.style.left = (img.offsetLeft + 6) + "px"; badge.style.top = (img.offsetTop + 6) + "px"; }
  });
}
window.addEventListener("resize", arenaPlaceOverlays);
document.addEventListener("DOMContentLoaded", arenaPlaceOverlays);
document.addEventListener("htmx:afterSettle", arenaPlaceOverlays);
document.addEventListener("load", function (event) {
  if (event.target.tagName === "IMG" && event.target.closest("#poll .slot")) arenaPlaceOverlays();
}, true);
document.addEventListener("toggle", arenaPlaceOverlays, true);
