// 数据导入页：上传进度条。The CSP allows scripts from our own origin only, so this lives here, not inline.
(function () {
  "use strict";
  var uploaded = false;

  function parts() {
    return {
      bar: document.getElementById("import-progress-bar"),
      text: document.getElementById("import-progress-text"),
      box: document.getElementById("import-progress"),
      button: document.getElementById("import-submit")
    };
  }

  function isImportForm(elt) {
    return elt && elt.id === "import-form";
  }

  function working(p) {
    // Upload finished: the server now checks every row; an indeterminate bar until the report arrives.
    p.bar.removeAttribute("value");
    p.text.textContent = "上传完成，正在校验和导入，请稍候…";
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (!isImportForm(evt.detail.elt)) { return; }
    var p = parts();
    uploaded = false;
    p.bar.value = 0;
    p.text.textContent = "正在上传… 0%";
    if (p.button) { p.button.disabled = true; }
  });

  document.addEventListener("htmx:xhr:progress", function (evt) {
    if (!isImportForm(evt.detail.elt || evt.target) || uploaded) { return; }
    var p = parts();
    var d = evt.detail;
    if (!d.lengthComputable || !d.total) { return; }
    var pct = Math.min(100, Math.round(d.loaded / d.total * 100));
    if (pct >= 100) {
      uploaded = true;
      working(p);
    } else {
      p.bar.value = pct;
      p.text.textContent = "正在上传… " + pct + "%";
    }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!isImportForm(evt.detail.elt)) { return; }
    var p = parts();
    if (p.button) { p.button.disabled = false; }
  });

  // A refused file (422) or a refused import (403) still carries a report to show.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    if (target && target.id === "import-result" && status >= 400 && status < 500) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });

  // Without htmx (plain form post) show at least an indeterminate bar while the page loads.
  document.addEventListener("submit", function (evt) {
    if (!isImportForm(evt.target) || window.htmx) { return; }
    var p = parts();
    if (!p.box) { return; }
    p.box.style.display = "block";
    working(p);
  });
})();
