// Clean search-result snippets. Sphinx's search page (searchtools.js) builds each snippet from
// the text of the result page's [role=main] element. In this theme that element also holds the
// article header (its download menu reads ".ipynb .pdf") and a print-only table of contents,
// and the maths there is still TeX between \( \) delimiters, MathJax having not run on a fetched
// page. This wraps Search.htmlToText to drop the page chrome, strip the delimiters and collapse
// white space.
(function () {
  "use strict";
  if (typeof Search === "undefined" || typeof Search.htmlToText !== "function") return;
  var original = Search.htmlToText;
  var CHROME = [".bd-header-article", ".header-article-items", ".prev-next-area",
    ".bd-footer-article", ".bd-sidebar-secondary", ".dropdown-download-buttons",
    ".onlyprint"].join(", ");
  Search.htmlToText = function (htmlString, anchor) {
    var doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll(CHROME).forEach(function (e) { e.remove(); });
    doc.querySelectorAll(".math").forEach(function (e) {
      e.textContent = e.textContent.trim()
        .replace(/^\\[([]\s*/, "").replace(/\s*\\[)\]]$/, "")
        .replace(/^\$\$?|\$\$?$/g, "");
    });
    return original(doc.documentElement.outerHTML, anchor).replace(/\s+/g, " ");
  };
})();
