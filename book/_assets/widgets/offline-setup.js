// Runs between RequireJS and the ipywidgets HTML manager (embed-amd.js) on pages with widgets, so that
// the manager works offline and beside MathJax 3. Listed in `nb_ipywidgets_js` in _config.yml.
(function () {
  "use strict";
  // 1. The manager finds its fonts (Font Awesome icons) next to the URL RequireJS gives its own module,
  //    by default the page's folder. Point that module at this folder's html-manager/, where the
  //    Makefile copies the fonts, so that they load from this site and not from a 404.
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": here + "html-manager" } });

  // 2. The manager typesets widget labels with MathJax 2's API, MathJax.Hub.Queue(["Typeset", Hub, el]).
  //    The book loads MathJax 3, which has no Hub: forward those calls to MathJax 3's typesetPromise.
  function addHub() {
    var mathjax = window.MathJax;
    if (!mathjax || mathjax.Hub || !mathjax.startup) {
      return; // no MathJax 3 on this page (the manager then skips typesetting), or it already has a Hub
    }
    mathjax.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (Array.isArray(job) && job[0] === "Typeset") {
            var element = job[2];
            mathjax.startup.promise = mathjax.startup.promise.then(function () {
              return mathjax.typesetPromise(element ? [element] : undefined);
            });
          }
        });
      },
    };
  }
  // MathJax 3 is a deferred script: it has replaced its configuration object by itself once the
  // document is parsed, which is before the manager renders any widget.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", addHub);
  } else {
    addHub();
  }
})();
