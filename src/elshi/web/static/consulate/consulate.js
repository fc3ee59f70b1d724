// Register the service worker so the e-consulate can be installed and shows a page offline.
if ("serviceWorker" in navigator) {
  window.addEventListener("load", function () {
    navigator.serviceWorker.register("/consulate/sw.js", { scope: "/consulate/" }).catch(function () {});
  });
}
