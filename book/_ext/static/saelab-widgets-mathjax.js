// The Jupyter widgets HTML manager (@jupyter-widgets/html-manager 1.x) typesets widget labels
// with the MathJax 2 API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the book loads
// MathJax 3, which has no Hub, so every labelled widget threw a TypeError. This file is loaded
// (deferred) right after MathJax and maps that one call onto MathJax 3's typesetPromise.
(function () {
  var mj = window.MathJax;
  if (!mj || !mj.version || mj.Hub) return;
  mj.Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
          var element = job[2];
          mj.startup.promise.then(function () { return mj.typesetPromise([element]); });
        }
      }
    },
  };
})();
