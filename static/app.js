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
