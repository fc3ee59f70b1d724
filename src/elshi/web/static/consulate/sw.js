// elshi e-consulate service worker. Caches only the app shell (styles, icons, the offline
// page); personal pages are never cached, so a shared phone keeps no one's data.
const CACHE = "elshi-consulate-v2";
const SHELL = [
  "/consulate/offline",
  "/static/elshi.css",
  "/static/consulate/consulate.css",
  "/static/consulate/consulate.js",
  "/static/consulate/icon-192.png",
  "/static/favicon.svg",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.match("/consulate/offline")));
    return;
  }
  if (SHELL.includes(url.pathname)) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});

// Emergency alerts: show the crisis message; a tap opens the personal check-in link in it.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const body = data.body || "";
  // The personal check-in link is the message's only address with /c/ in its path.
  const link = (body.match(/\S+\/c\/\S+/) || ["/consulate/home"])[0];
  event.waitUntil(
    self.registration.showNotification(data.title || "e-Consulate", {
      body: body,
      tag: data.tag || "elshi-crisis",
      requireInteraction: true,
      data: { url: link },
    })
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/consulate/home";
  event.waitUntil(self.clients.openWindow(url));
});
