// The menu (primary sidebar) and page-contents (secondary sidebar) buttons, at every width.
//
// pydata-sphinx-theme 0.17 binds its click handler to the first `.primary-toggle` and the first
// `.secondary-toggle` of the page (document.querySelector). Since 0.17.0 its own header renders a
// primary toggle that sphinx-book-theme hides, so the button the reader sees (in the article
// header) has no handler at all: tapping it does nothing (pydata-sphinx-theme issue #2451).
//
// This listener runs in the capture phase, before any handler on the buttons themselves:
// * On wide screens (>= 960 px, where the primary sidebar is part of the layout) the primary
//   button shows and hides the sidebar, with the theme's own `hide-on-wide` class.
// * Otherwise a tap on any toggle is forwarded to the button the theme bound, which opens the
//   sidebar as a dialog. If a future theme binds every button, forwarding still opens it once.
(function () {
  "use strict";
  var WIDE = window.matchMedia("(min-width: 960px)");
  var forwarding = false;

  function onClick(event) {
    if (forwarding || !event.target || !event.target.closest) return;
    var button = event.target.closest(".primary-toggle, .secondary-toggle");
    if (!button) return;
    var kind = button.classList.contains("primary-toggle") ? "primary" : "secondary";
    var sidebar = document.getElementById("pst-" + kind + "-sidebar");
    if (!sidebar) return;
    if (kind === "primary" && WIDE.matches) {
      event.preventDefault();
      event.stopImmediatePropagation();
      var hidden = sidebar.classList.toggle("hide-on-wide");
      button.setAttribute("aria-expanded", hidden ? "false" : "true");
      return;
    }
    var bound = document.querySelector("." + kind + "-toggle");
    if (!bound || bound === button) return; // the theme's own handler opens the dialog
    event.preventDefault();
    event.stopImmediatePropagation();
    var dialog = document.getElementById("pst-" + kind + "-sidebar-modal");
    if (dialog && dialog.open) return;
    forwarding = true;
    try {
      bound.click();
    } finally {
      forwarding = false;
    }
  }

  window.addEventListener("click", onClick, true);
})();
