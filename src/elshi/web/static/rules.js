// The alert rule form: show only the chosen kind's settings. Without scripts every kind's
// settings are shown under its heading and the server reads only the chosen kind's.
// While a number is typed, the words around it take the plural form it needs ("1 post",
// "5 posts"; Russian has three forms): the server lists the sentence's words for each
// combination of forms, and the form of each number.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  if (!form) { return; }
  var kind = form.querySelector("#kind");
  var parts = form.querySelectorAll("fieldset.rule-kind[data-kind]");
  var hint = form.querySelector("#kind-hint");
  function show() {
    for (var i = 0; i < parts.length; i++) {
      var on = parts[i].getAttribute("data-kind") === kind.value;
      parts[i].hidden = !on;
      parts[i].disabled = !on;
    }
    if (hint) { hint.hidden = true; }
  }
  kind.addEventListener("change", show);
  show();

  function formOf(plural, value, before) {
    var n = Math.trunc(parseFloat(String(value).replace(",", ".")));
    if (!isFinite(n) || n < 0) { return before; }
    var table = plural.forms;
    return table[n < table.length ? n : 100 + (n % 100)];
  }

  function follow(fieldset) {
    var data = fieldset.querySelector("script.plural-forms");
    if (!data) { return; }
    var plural = JSON.parse(data.textContent);
    var fields = plural.fields.map(function (id) { return document.getElementById(id); });
    var words = fieldset.querySelectorAll("p.sentence span.words");
    var current = fields.map(function (field) {
      return formOf(plural, field ? field.value : "", 0);
    });
    function update() {
      current = fields.map(function (field, i) {
        return field ? formOf(plural, field.value, current[i]) : current[i];
      });
      var texts = plural.variants[current.join(",")];
      if (!texts || texts.length !== words.length) { return; }
      for (var i = 0; i < words.length; i++) { words[i].textContent = texts[i]; }
    }
    fields.forEach(function (field) {
      if (field) { field.addEventListener("input", update); }
    });
  }
  for (var i = 0; i < parts.length; i++) { follow(parts[i]); }
}());
