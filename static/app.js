// Sends the CSRF token with every htmx request (Flask-WTF reads X-CSRFToken).
// Loaded from a file, not inline, so the Content-Security-Policy allows no inline script.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRFToken"] = meta.content;
  }
});

// Error responses (4xx with an inline message) are swapped in like successes, so a refusal
// shows in place instead of being silently dropped. 5xx stays an error.
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status;
  if (status === 409 || status === 400 || status === 413 || status === 422) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// A request that ended on a whole page instead of a fragment (the session ended, so the
// server redirected to /login, or to /account/password) shows that page, not a page inside
// a table row.
document.addEventListener("htmx:beforeSwap", function (event) {
  var xhr = event.detail.xhr;
  if (/^\s*<!doctype html/i.test(xhr.responseText || "")) {
    event.detail.shouldSwap = false;
    var url = new URL(xhr.responseURL || window.location.href);
    if (url.searchParams.has("next")) {
      // Back to this page after signing in, not to the URL the fragment came from.
      url.searchParams.set("next", window.location.pathname + window.location.search);
    }
    window.location.assign(url.toString());
  }
});

// Any other failure (403, 404, 5xx, no network) is not swapped by htmx; say so on the page.
function showRequestError(message) {
  var box = document.getElementById("request-error");
  if (!box) {
    box = document.createElement("p");
    box.id = "request-error";
    box.className = "inline-error";
    box.setAttribute("role", "alert");
    var main = document.querySelector("main") || document.body;
    main.insertBefore(box, main.firstChild);
  }
  box.textContent = message;
}
document.addEventListener("htmx:responseError", function (event) {
  var status = event.detail.xhr.status;
  showRequestError(status === 403 ? "You are not allowed to do that." :
    status === 404 ? "That no longer exists. Reload the page to see the current state." :
    "Something went wrong on our side (" + status + "); nothing was changed. Try again.");
});
document.addEventListener("htmx:sendError", function () {
  showRequestError("The server could not be reached. Check your connection and try again.");
});

// --- the viewer's time zone ------------------------------------------------------------------
// The server shows times in the user's profile zone, else in this browser's zone, read from
// the "tz" cookie written here (once; again only if the zone changes).
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && document.cookie.split("; ").indexOf("tz=" + zone) === -1) {
    document.cookie = "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();

// --- relative times stay current ----------------------------------------------------------
// The server writes "3 days ago" (web.relative_time: Babel's format_timedelta, English) in a
// <time data-relative datetime="..."> element; a page left open rewrites it each minute by the
// same rule: the largest unit of which the time is at least 0.85, rounded half to even, and
// "just now" under 45 seconds.
var RELATIVE_UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60], ["second", 1]];
var relativeFormat = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat("en", {numeric: "always"}) : null;
function roundHalfEven(x) {
  var r = Math.round(x);
  return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}
function relativeText(seconds) {
  if (Math.abs(seconds) < 45) { return "just now"; }
  for (var i = 0; i < RELATIVE_UNITS.length; i++) {
    var value = Math.abs(seconds) / RELATIVE_UNITS[i][1];
    if (value >= 0.85 || i === RELATIVE_UNITS.length - 1) {
      var n = Math.max(1, roundHalfEven(value));
      return relativeFormat.format(seconds < 0 ? -n : n, RELATIVE_UNITS[i][0]);
    }
  }
}
function refreshRelativeTimes() {
  var now = Date.now();
  document.querySelectorAll("time[data-relative]").forEach(function (el) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) { return; }
    var text = relativeText((at - now) / 1000);
    if (el.textContent !== text) { el.textContent = text; }
  });
}
if (relativeFormat) { window.setInterval(refreshRelativeTimes, 60000); }

// --- after a swap: one polite announcement, focus somewhere sensible ------------------------
// The server sends HX-Trigger-After-Settle {"onb:announce": {message, focus}} (web.respond).
function focusElement(el) {
  if (!el) { return false; }
  if (!el.matches("a[href], button:not([disabled]), input, select, textarea, [tabindex]")) {
    el.setAttribute("tabindex", "-1");
  }
  el.focus();
  return document.activeElement === el;
}
function announce(message) {
  var region = document.getElementById("announcer");
  if (!region || !message) { return; }
  // Emptied first, so the same sentence twice is still read twice.
  region.textContent = "";
  window.setTimeout(function () { region.textContent = message; }, 50);
}
document.body.addEventListener("onb:announce", function (event) {
  var detail = event.detail || {};
  if (detail.focus) { focusElement(document.querySelector(detail.focus)); }
  announce(detail.message);
});

// --- busy controls -----------------------------------------------------------------------------
// While its request runs, a control says so (aria-busy: Pico shows a spinner) and, with
// hx-disabled-elt, cannot be pressed twice. Any flash message from a previous action goes.
function busyButtons(elt) {
  if (!elt) { return []; }
  if (elt.matches("button")) { return [elt]; }
  return Array.prototype.slice.call(elt.querySelectorAll("button[type=submit], button:not([type])"));
}
document.addEventListener("htmx:beforeRequest", function (event) {
  busyButtons(event.detail.elt).forEach(function (b) { b.setAttribute("aria-busy", "true"); });
  document.querySelectorAll("main .flash").forEach(function (f) { f.remove(); });
});
document.addEventListener("htmx:afterRequest", function (event) {
  busyButtons(event.detail.elt).forEach(function (b) { b.removeAttribute("aria-busy"); });
});

// --- flash messages: dismissible -------------------------------------------------------------
document.querySelectorAll("[data-dismiss]").forEach(function (button) { button.hidden = false; });
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-dismiss]");
  if (!button) { return; }
  var flash = button.closest(".flash");
  if (flash) { flash.remove(); }
  focusElement(document.getElementById("main"));
});

// --- confirm dialogs ---------------------------------------------------------------------------
// A control with hx-get into #modal-slot loads a <dialog data-modal>; it opens as a modal
// (focus inside, Escape closes it), and on closing focus returns to the control that opened it.
// Its confirm form posts with htmx; the dialog closes when that request is done and the
// server's announcement moves focus to the result.
var dialogOpener = null;
document.addEventListener("htmx:beforeRequest", function (event) {
  var target = event.detail.target;
  if (target && target.id === "modal-slot") { dialogOpener = document.activeElement; }
});
// Opened after settling, once htmx has processed the dialog's form (opened earlier, a quick
// Enter would post it as a plain form).
document.addEventListener("htmx:afterSettle", function (event) {
  if (!event.detail.target || event.detail.target.id !== "modal-slot") { return; }
  var dialog = event.detail.target.querySelector("dialog[data-modal]");
  if (!dialog) { return; }
  var opener = dialogOpener;
  dialog.addEventListener("close", function () {
    dialog.remove();
    if (opener && opener.isConnected && !opener.disabled) { opener.focus(); }
  });
  // showModal focuses the first control: Cancel, the harmless choice.
  dialog.showModal();
});
document.addEventListener("htmx:afterRequest", function (event) {
  var dialog = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("dialog[data-modal]");
  if (dialog && dialog.open) { dialog.close(); }
});
