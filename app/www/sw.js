// The app's service worker (docs/app.md, "Offline"): it keeps the app shell (the pages,
// scripts, styles, the client library and the vendor bundles) in the Cache Storage so
// the app opens with no network. Network first: with a network every file comes from
// the server (revalidated: an updated app arrives at once) and the cached copy is
// refreshed; without one the cached copy answers. The API (/api/...) is never cached:
// the data live in IndexedDB, written by the app itself.
const CACHE = "inspectsync-app-v1";
const NETWORK_WAIT_MS = 3000;
const SHELL = [
  "/app/",
  "/app/app.js",
  "/app/i18n.js",
  "/app/style.css",
  "/app/icon.svg",
  "/app/manifest.webmanifest",
  "/app/vendor/msgpack.js",
  "/app/vendor/tus.js",
  "/app/lib/index.js",
  "/app/lib/tablet.js",
  "/app/lib/http.js",
  "/app/lib/idb.js",
  "/app/lib/hlc.js",
  "/app/lib/evidence.js",
  "/app/lib/signatures.js",
  "/app/lib/reauth.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || !url.pathname.startsWith("/app")) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      // a navigation to any view of the app is the shell
      const key = request.mode === "navigate" ? "/app/" : url.pathname;
      const fresh = fetch(request).then(async (response) => {
        if (response.ok) await cache.put(key, response.clone());
        return response;
      });
      fresh.catch(() => {}); // a failure after the cached copy answered is no error
      // a network that does not answer (a Wi-Fi without the server) is no network:
      // after NETWORK_WAIT_MS the cached copy answers, the fetch still refreshes the cache
      const late = new Promise((resolve) => setTimeout(resolve, NETWORK_WAIT_MS, null));
      try {
        const first = await Promise.race([fresh, late]);
        if (first) return first;
        const cached = await cache.match(key);
        return cached || (await fresh);
      } catch (err) {
        const cached = await cache.match(key);
        if (cached) return cached;
        throw err;
      }
    })(),
  );
});
