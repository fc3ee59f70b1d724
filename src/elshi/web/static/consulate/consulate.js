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

// The error summary: take the focus when a form comes back with problems (a screen reader
// reads it), and let each link put the focus in its field with the label in view.
(function () {
  function init() {
    var summary = document.getElementById("errors");
    if (!summary || !summary.classList.contains("error-summary")) return;
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      if (!link) return;
      var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
      if (!target) return;
      event.preventDefault();
      var label = document.querySelector("label[for='" + target.id + "']") || target;
      label.scrollIntoView();
      target.focus({ preventScroll: true });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

// The country picker: the list of countries (a <select>, which works without JavaScript)
// becomes a text box that suggests the countries matching what the citizen types, from a
// <datalist> of the same names. The form then sends the name, which the server turns into the
// country's code (and refuses, with a message at the box, when it names no country).
(function () {
  function init() {
    var selects = document.querySelectorAll("select[data-picker='country']");
    Array.prototype.forEach.call(selects, function (select) {
      var box = document.createElement("input");
      var list = document.createElement("datalist");
      list.id = select.id + "-list";
      Array.prototype.forEach.call(select.options, function (option) {
        if (!option.value) return;
        var item = document.createElement("option");
        item.value = option.text;
        list.appendChild(item);
      });
      ["id", "name", "aria-describedby", "aria-invalid", "required", "autofocus"].forEach(function (a) {
        if (select.hasAttribute(a)) box.setAttribute(a, select.getAttribute(a));
      });
      box.type = "text";
      box.setAttribute("list", list.id);
      box.setAttribute("autocomplete", "off");
      box.setAttribute("maxlength", "100");
      var chosen = select.options[select.selectedIndex];
      box.value = chosen && chosen.value ? chosen.text : select.getAttribute("data-typed") || "";
      select.parentNode.replaceChild(box, select);
      box.parentNode.insertBefore(list, box.nextSibling);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
