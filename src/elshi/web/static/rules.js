// The alert rule form: show only the chosen kind's settings. Without scripts every kind's
// settings are shown under its heading and the server reads only the chosen kind's.
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
}());
