// Enhancements for the Cullis consoles. Every page works without this file.
(function () {
  "use strict";

  // Live updates: the server pushes `update` events; elements that want them declare
  // hx-trigger="cullis:update from:body" and htmx refreshes them.
  function listen() {
    var url = document.body.getAttribute("data-live");
    if (!url || !window.EventSource) return;
    var pending = null;
    var source = new EventSource(url);
    // Close the stream when the page goes away (or into the back/forward cache): over HTTP/1.1
    // a browser has six connections per host, and streams left open would starve the next
    // page's requests.
    window.addEventListener("pagehide", function () {
      source.close();
    });
    source.addEventListener("update", function () {
      // Coalesce bursts (an approval writes several audit rows) into one refresh.
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        document.body.dispatchEvent(new CustomEvent("cullis:update"));
      }, 250);
    });
  }

  // Buttons that say "Copy": copy the text of the element their data-copy names.
  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          button.textContent = "Copied";
        });
      });
    });
  }

  // Dangerous buttons ask first (no inline onclick: the CSP forbids it).
  function confirmations() {
    document.addEventListener("submit", function (event) {
      var button = event.submitter;
      var question = button && button.getAttribute("data-confirm");
      if (question && !window.confirm(question)) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    listen();
    copyButtons();
    confirmations();
  });
})();
