// The project's additions to the book theme (loaded on every page by site/mme_site.py).
//
// A figure is never shown smaller than its image's width divided by MAX_SHRINK: on a narrow screen its
// output box scrolls sideways instead (site/static/mme.css), so its text stays readable.
(function () {
  "use strict";
  var MAX_SHRINK = 1.5;
  function keep(img) {
    if (img.naturalWidth > 0) {
      img.style.minWidth = Math.ceil(img.naturalWidth / MAX_SHRINK) + "px";
    }
  }
  function figures() {
    return document.querySelectorAll(".cell_output img");
  }
  function start() {
    figures().forEach(function (img) {
      if (img.complete) { keep(img); }
      img.addEventListener("load", function () { keep(img); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
