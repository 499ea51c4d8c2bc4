/* Vroegsignaal: small enhancements on top of pages that work without them.
 *
 * [data-status-url]: a batch being processed, or a DDAS export being made. Its status is
 * asked every 1.5 s; the status text (a polite live region) and any progress bar follow, and
 * when the work is done the report, rendered by the server, replaces the element: no
 * reload, nothing to click. */
(function () {
  "use strict";

  function swapReport(element) {
    return fetch(window.location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser()
          .parseFromString(html, "text/html")
          .getElementById(element.id);
        if (fresh) { element.replaceWith(fresh); }
      });
  }

  function follow(element) {
    var url = element.getAttribute("data-status-url");
    var label = element.querySelector("[data-status-label]");
    var bar = element.querySelector("progress");
    var count = element.querySelector("[data-progress-label]");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("status " + response.status); }
          return response.json();
        })
        .then(function (state) {
          if (label) {
            label.textContent = state.label;
            label.className = "status status-" + state.status;
          }
          if (bar && state.total) {
            bar.max = state.total;
            bar.value = state.done;
          }
          if (count && state.progress) { count.textContent = state.progress; }
          if (state.final) { return swapReport(element); }
          window.setTimeout(poll, 1500);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  document.querySelectorAll("[data-status-url]").forEach(follow);
})();
