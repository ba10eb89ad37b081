// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // the sign-in form sends the browser's time zone, so times show in it
  document.querySelectorAll('input[data-fill="timezone"]').forEach(function (el) {
    try { el.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* default zone */ }
  });
  // the queue: ask every 10 s (while the page is shown) whether its findings changed;
  // if they did, reload it, unless the reader is busy with the filters (then say so)
  var live = document.getElementById("live");
  if (live && window.fetch) {
    var busy = function () {
      var el = document.activeElement;
      return el && el.closest && el.closest("form") !== null;
    };
    var check = function () {
      if (document.visibilityState !== "visible") { return; }
      fetch(live.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body || body.stamp === live.dataset.stamp) { return; }
          if (busy()) { live.hidden = false; } else { window.location.reload(); }
        })
        .catch(function () { /* offline for a moment: ask again next time */ });
    };
    setInterval(check, 10000);
  }
  // a form with data-confirm asks first (without this script it is sent at once)
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.dataset.confirm)) { ev.preventDefault(); ev.stopImmediatePropagation(); }
    });
  });
  // a form is sent once, even on a double tap
  document.querySelectorAll('form[method="post"]').forEach(function (form) {
    form.addEventListener("submit", function () {
      var b = form.querySelector('button[type="submit"]');
      if (b) { setTimeout(function () { b.disabled = true; }, 0); }
    });
  });
})();
