// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // the sign-in form sends the browser's time zone, so times show in it
  document.querySelectorAll('input[data-fill="timezone"]').forEach(function (el) {
    try { el.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* default zone */ }
  });
  // a form is sent once, even on a double tap
  document.querySelectorAll('form[method="post"]').forEach(function (form) {
    form.addEventListener("submit", function () {
      var b = form.querySelector('button[type="submit"]');
      if (b) { setTimeout(function () { b.disabled = true; }, 0); }
    });
  });
})();
