// Live per-channel previews and length counters on the statement editor. The rules are
// those of elshi.speak.text and Channel.preview; the words come from the page (translated).
(function () {
  "use strict";
  var box = document.querySelector(".versions[data-counting]");
  if (!box) { return; }
  var counting = JSON.parse(box.getAttribute("data-counting") || "{}");
  var rules = counting.rules || [];
  var words = counting.words || {};
  var title = box.getAttribute("data-title") || "";
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
  function measure(text, rule) {
    if (rule.counting === "x_weighted") {
      return withUrls(text.normalize("NFC"), 23, function (t) {
        return clusters(t).reduce(function (a, c) { return a + xWeight(c); }, 0);
      });
    }
    if (rule.counting === "graphemes") {
      if (rule.urls_as) { return withUrls(text, rule.urls_as, function (t) { return clusters(t).length; }); }
      return clusters(text).length;
    }
    if (rule.counting === "utf16") { return text.length; }
    return Array.from(text).length;
  }
  // As stored and sent: line ends made plain, outer spaces cut.
  function posted(text) { return text.replace(/\r\n/g, "\n").trim(); }
  function fill(template, n, max, over) {
    return template.replace("%(n)s", String(n)).replace("%(max)s", max).replace("%(over)s", String(over));
  }
  function value(form, selector) {
    var el = form.querySelector(selector);
    return el ? el.value : "";
  }

  function update(form) {
    var lang = form.getAttribute("data-lang");
    var list = document.getElementById("counters-" + lang);
    var shown = document.getElementById("previews-" + lang);
    var main = value(form, 'textarea[name="text"]');
    var headline = posted(value(form, 'input[name="headline"]'));
    rules.forEach(function (rule) {
      var item = list ? list.querySelector('[data-account="' + rule.account + '"]') : null;
      var card = shown ? shown.querySelector('[data-account="' + rule.account + '"]') : null;
      if (!item && !card) { return; }
      var variant = posted(value(form, 'textarea[data-variant="' + rule.channel + '"]'));
      var text = posted(variant || main);
      var n = measure(text, rule);
      var over = rule.max === null ? 0 : Math.max(0, n - rule.max);
      var key = rule.max === null ? "free" : n === 0 ? "empty" : over ? "over" : "fits";
      var state = key === "over" || key === "empty" ? "over" : "fits";
      if (item) {
        item.setAttribute("data-count", String(n));
        item.className = state;
        item.querySelector(".counter").textContent = fill(words[key] || "", n, rule.max_label, over);
      }
      if (card) {
        card.className = "preview " + state;
        card.querySelector(".body").textContent = text;
        var subject = card.querySelector(".subject");
        if (subject) {
          var fallback = rule.subject === "title" ? title : Array.from(text.split("\n")[0]).slice(0, 100).join("");
          subject.textContent = headline || posted(fallback);
        }
      }
    });
  }
  document.querySelectorAll("form[data-lang]").forEach(function (form) {
    form.querySelectorAll(".counted").forEach(function (field) {
      field.addEventListener("input", function () { update(form); });
    });
  });
})();
