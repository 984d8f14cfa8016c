// Inline maths that is wider than its line box (a long formula in running text, on a phone)
// would be cut off: MathJax 3 does not break inline formulas. Once MathJax has typeset the page,
// and again after a resize, this marks each such formula with `saelab-wide-inline`, which
// saelab-book.css turns into a box of at most the column's width that scrolls sideways.
(function () {
  "use strict";
  function mark() {
    document.querySelectorAll('mjx-container[jax="CHTML"]:not([display="true"])').forEach(function (c) {
      c.classList.remove("saelab-wide-inline");
      var block = c.parentElement && c.parentElement.closest("p, li, td, th, dd, dt, div, section");
      if (!block) return;
      var limit = block.getBoundingClientRect().right;
      if (c.getBoundingClientRect().right > limit + 1 || c.getBoundingClientRect().width > block.clientWidth + 1) {
        c.classList.add("saelab-wide-inline");
      }
    });
  }
  function start() {
    var mj = window.MathJax;
    if (!mj || !mj.startup || !mj.startup.promise) return;
    mj.startup.promise.then(mark);
    var timer = null;
    window.addEventListener("resize", function () {
      clearTimeout(timer);
      timer = setTimeout(mark, 200);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
