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
  if (status === 409 || status === 400 || status === 422) {
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
