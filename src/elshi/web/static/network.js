// A group's network: pan by dragging, zoom with the wheel or the buttons (shown only with
// scripts on). Without scripts the drawing is whole and still; the table beside it lists
// the same links either way.
(function () {
  "use strict";
  var svg = document.querySelector("svg.network");
  var tools = document.getElementById("network-tools");
  if (!svg || !tools) { return; }
  var base = svg.viewBox.baseVal;  // live: copied before the first change
  var start = { x: base.x, y: base.y };
  var side = base.width;
  var view = { x: start.x, y: start.y, w: side, h: side };
  function draw() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
  }
  function zoom(factor, cx, cy) {
    var w = Math.min(side * 2, Math.max(side / 10, view.w * factor));
    var k = w / view.w;
    view.x = cx - (cx - view.x) * k;
    view.y = cy - (cy - view.y) * k;
    view.w = w;
    view.h = w;
    draw();
  }
  function centre() { return [view.x + view.w / 2, view.y + view.h / 2]; }
  function point(evt) {
    var box = svg.getBoundingClientRect();
    return [view.x + (evt.clientX - box.left) / box.width * view.w,
            view.y + (evt.clientY - box.top) / box.height * view.h];
  }
  tools.hidden = false;
  tools.querySelector("[data-zoom=in]").addEventListener("click", function () {
    var c = centre(); zoom(1 / 1.25, c[0], c[1]);
  });
  tools.querySelector("[data-zoom=out]").addEventListener("click", function () {
    var c = centre(); zoom(1.25, c[0], c[1]);
  });
  tools.querySelector("[data-zoom=reset]").addEventListener("click", function () {
    view = { x: start.x, y: start.y, w: side, h: side };
    draw();
  });
  svg.addEventListener("wheel", function (evt) {
    evt.preventDefault();
    var p = point(evt);
    zoom(evt.deltaY > 0 ? 1.15 : 1 / 1.15, p[0], p[1]);
  }, { passive: false });
  var drag = null;
  svg.addEventListener("pointerdown", function (evt) {
    if (evt.target.closest && evt.target.closest("a")) { return; }  // a node stays a link
    drag = { x: evt.clientX, y: evt.clientY, vx: view.x, vy: view.y };
    svg.setPointerCapture(evt.pointerId);
  });
  svg.addEventListener("pointermove", function (evt) {
    if (!drag) { return; }
    var box = svg.getBoundingClientRect();
    view.x = drag.vx - (evt.clientX - drag.x) / box.width * view.w;
    view.y = drag.vy - (evt.clientY - drag.y) / box.height * view.h;
    draw();
  });
  function stop() { drag = null; }
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
}());
