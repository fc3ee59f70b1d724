// Register the service worker so the e-consulate can be installed and shows a page offline.
if ("serviceWorker" in navigator) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/consulate/sw.js", { scope: "/consulate/" }).catch(function () {});
  });
}

// Emergency alerts by web push: ask permission only when the citizen presses the button,
// subscribe with elshi's own VAPID key and store the subscription for crisis broadcasts.
(function () {
  function urlKey(base64) {
    var padded = (base64 + "===".slice((base64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function say(state, which) {
    state.textContent = state.getAttribute("data-" + which);
    state.hidden = false;
  }
  window.addEventListener("load", function () {
    var card = document.getElementById("push");
    var button = document.getElementById("push-on");
    var state = document.getElementById("push-state");
    if (!card || !button || !state) return;
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      say(state, "unsupported");
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      Notification.requestPermission()
        .then(function (permission) {
          if (permission !== "granted") throw new Error("denied");
          return Promise.all([
            navigator.serviceWorker.ready,
            fetch("/c/push/key").then(function (r) { return r.json(); }),
          ]);
        })
        .then(function (both) {
          return both[0].pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: urlKey(both[1].publicKey),
          });
        })
        .then(function (subscription) {
          return fetch("/c/push/subscribe", {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": card.getAttribute("data-csrf") },
            body: JSON.stringify(subscription.toJSON()),
          });
        })
        .then(function (r) {
          if (!r.ok) throw new Error("http " + r.status);
          say(state, "on");
          button.hidden = true;
        })
        .catch(function (err) {
          say(state, err && err.message === "denied" ? "denied" : "failed");
          button.disabled = false;
        });
    });
  });
})();
