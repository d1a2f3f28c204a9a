// 比对规则页：全市比对和试运行可能要几分钟。The CSP allows scripts from our own origin only, so this lives here.
// A form marked data-long-running shows its progress note and disables its buttons while the POST runs.
(function () {
  "use strict";
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || !form.hasAttribute || !form.hasAttribute("data-long-running")) { return; }
    if (form.getAttribute("data-submitted") === "1") { evt.preventDefault(); return; }  // no second run
    form.setAttribute("data-submitted", "1");
    var note = form.querySelector(".long-running");
    if (note) { note.hidden = false; }
    // Disable after the submit has been taken, so the clicked button's value still goes with the form.
    window.setTimeout(function () {
      var buttons = form.querySelectorAll("button");
      for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
    }, 0);
  });
  // Back from the browser cache: make the form usable again.
  window.addEventListener("pageshow", function () {
    var forms = document.querySelectorAll("form[data-long-running]");
    for (var i = 0; i < forms.length; i++) {
      forms[i].removeAttribute("data-submitted");
      var note = forms[i].querySelector(".long-running");
      if (note) { note.hidden = true; }
      var buttons = forms[i].querySelectorAll("button");
      for (var j = 0; j < buttons.length; j++) { buttons[j].disabled = false; }
    }
  });
})();
