// jitgrant console: live updates. The server sends an event when an AccessRequest changes (from a
// watch); the page fetches itself again and swaps its live part, unless the person is typing a
// reason. No inline script anywhere: this file is the only script the Content-Security-Policy allows.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var busy = false, again = false;
  function typing() {
    var fields = live.querySelectorAll("input[name=reason]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value || fields[i] === document.activeElement) { return true; }
    }
    return false;
  }
  function refresh() {
    if (busy) { again = true; return; }
    if (typing()) { return; }
    busy = true;
    fetch(window.location.pathname, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live");
        if (fresh && !typing()) {
          live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
          var heading = document.querySelector("main h1"), freshHeading = doc.querySelector("main h1");
          if (heading && freshHeading) { heading.textContent = freshHeading.textContent; }
          document.title = doc.title;
          document.body.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/events");
  source.addEventListener("change", refresh);
  // Sent once the watch is set up (and again after a reconnect): whatever changed before it is
  // fetched now, whatever changes after it comes as a "change" event.
  source.addEventListener("ready", function () {
    refresh();
    document.body.setAttribute("data-live", "watching");
  });
  source.addEventListener("ended", function () { source.close(); });
})();
