// Live length counters on the statement editor: the same rules as elshi.speak.text.
(function () {
  "use strict";
  var box = document.querySelector(".versions[data-limits]");
  if (!box) { return; }
  var limits = JSON.parse(box.getAttribute("data-limits") || "[]");
  var seg = typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  var URL_RE = /https?:\/\/[^\s<>"']+/gi;
  var EMOJI = /\p{Extended_Pictographic}|\p{Regional_Indicator}/u;
  var LIGHT = [[0x0000, 0x10FF], [0x2000, 0x200D], [0x2010, 0x201F], [0x2032, 0x2037]];

  function clusters(text) {
    if (!seg) { return Array.from(text); }
    var out = [];
    for (var s of seg.segment(text)) { out.push(s.segment); }
    return out;
  }
  function xWeight(cluster) {
    if (EMOJI.test(cluster)) { return 2; }
    var total = 0;
    for (var ch of cluster) {
      var cp = ch.codePointAt(0);
      total += LIGHT.some(function (r) { return cp >= r[0] && cp <= r[1]; }) ? 1 : 2;
    }
    return total;
  }
  function withUrls(text, urlLength, count) {
    var total = 0, pos = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      total += count(text.slice(pos, m.index)) + urlLength;
      pos = m.index + m[0].length;
    }
    return total + count(text.slice(pos));
  }
  function measure(text, limit) {
    if (limit.counting === "x_weighted") {
      return withUrls(text.normalize("NFC"), 23, function (t) {
        return clusters(t).reduce(function (a, c) { return a + xWeight(c); }, 0);
      });
    }
    if (limit.counting === "graphemes") {
      if (limit.urls_as) { return withUrls(text, limit.urls_as, function (t) { return clusters(t).length; }); }
      return clusters(text).length;
    }
    if (limit.counting === "utf16") { return text.length; }
    return Array.from(text).length;
  }
  function update(area) {
    var list = document.querySelector('.counters[data-for="' + area.id + '"]');
    if (!list) { return; }
    limits.forEach(function (limit) {
      var item = list.querySelector('[data-account="' + limit.account + '"]');
      if (!item) { return; }
      var n = measure(area.value.trim(), limit);
      item.querySelector(".count").textContent = String(n);
      item.className = n > limit.max || n === 0 ? "over" : "fits";
    });
  }
  document.querySelectorAll("textarea.counted").forEach(function (area) {
    area.addEventListener("input", function () { update(area); });
  });
})();
