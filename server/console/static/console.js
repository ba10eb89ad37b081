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
  // the rectification response's files: through tus (the tablet app's tus client,
  // /app/vendor/tus.js), each announced by its SHA-256; the form then carries their
  // hashes instead of the files. Without this (no script, no WebCrypto on plain http,
  // no bundle) the files are posted with the form and stored by the server the same way.
  document.querySelectorAll("form[data-tus]").forEach(function (form) {
    var input = form.querySelector('input[type="file"]');
    var progress = form.querySelector(".rect-progress");
    var carried = form.querySelector(".rect-carried");
    if (!input || !window.crypto || !window.crypto.subtle || !window.fetch) { return; }
    var say = function (template, values) {
      return template.replace(/\{(\w+)\}/g, function (_, k) { return values[k] !== undefined ? values[k] : ""; });
    };
    var hex = function (buf) {
      return Array.prototype.map.call(new Uint8Array(buf), function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    };
    var line = function (text, cls) {
      var p = document.createElement("div");
      p.textContent = text;
      if (cls) { p.className = cls; }
      progress.appendChild(p);
      return p;
    };
    var sending = false;
    form.addEventListener("submit", function (ev) {
      if (sending || !input.files || input.files.length === 0) { return; }
      ev.preventDefault();
      ev.stopImmediatePropagation();
      var files = Array.prototype.slice.call(input.files);
      var button = form.querySelector('button[type="submit"]');
      if (button) { button.disabled = true; }
      progress.textContent = "";
      var plain = function () { sending = true; form.submit(); };  // the files go with the form
      import(new URL("/app/vendor/tus.js", window.location.href).href).then(function (tus) {
        var one = function (i) {
          if (i >= files.length) {
            input.value = "";
            sending = true;
            form.submit();
            return;
          }
          var file = files[i];
          var shown = line(say(form.dataset.msgUploading, { name: file.name, pct: 0 }));
          file.arrayBuffer().then(function (bytes) { return window.crypto.subtle.digest("SHA-256", bytes); })
            .then(function (digest) {
              var sha = hex(digest);
              var upload = new tus.Upload(file, {
                endpoint: new URL(form.dataset.tus, window.location.href).href,
                headers: { "X-CSRF-Token": form.dataset.csrf },
                metadata: { sha256: sha, inspection_id: form.dataset.inspection, filename: file.name, purpose: "rectification" },
                chunkSize: 4 * 1024 * 1024,
                retryDelays: [0, 1000, 3000],
                removeFingerprintOnSuccess: true,
                onProgress: function (sent, total) {
                  shown.textContent = say(form.dataset.msgUploading, { name: file.name, pct: Math.floor(100 * sent / (total || 1)) });
                },
                onSuccess: function () {
                  var h = document.createElement("input");
                  h.type = "hidden"; h.name = "evidence"; h.value = sha;
                  carried.appendChild(h);
                  shown.textContent = file.name + " ✓ SHA-256 " + sha;
                  one(i + 1);
                },
                onError: function (err) {
                  var problem = String(err && err.message || err);
                  var res = err && err.originalResponse;
                  try { problem = JSON.parse(res.getBody()).detail || problem; } catch (e) { /* not ours */ }
                  shown.textContent = say(form.dataset.msgFailed, { name: file.name, problem: problem });
                  shown.className = "field-error";
                  if (button) { button.disabled = false; }
                }
              });
              upload.start();
            })
            .catch(plain);
        };
        one(0);
      }, plain);
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
