// 审核流程页面：受理表单随项目切换期次和面积栏，待办全选，操作前确认，公示名单打印。
// The CSP allows scripts from our own origin only, so this lives here, not inline.
(function () {
  "use strict";

  function itemData() {
    var node = document.getElementById("item-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function setupAcceptForm() {
    var items = itemData();
    var select = document.getElementById("item_code");
    if (!items || !select) { return; }
    var period = document.getElementById("period");
    var quantityRow = document.getElementById("quantity-row");
    var info = document.getElementById("item-info");
    select.addEventListener("change", function () {
      var item = items[select.value];
      if (!item) { return; }
      // Each frequency names its periods differently: start from the current one.
      period.value = item.period;
      quantityRow.hidden = item.basis !== "亩";
      info.textContent = "按" + item.basis + "发放 · 标准 " + item.standard + " 元/" + item.basis +
        " · 发放周期：" + item.frequency;
    });
  }

  function setupCheckAll() {
    var all = document.getElementById("check-all");
    if (!all) { return; }
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input.row-check");
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
    });
  }

  // Buttons with data-confirm ask before their form is submitted.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      evt.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    setupAcceptForm();
    setupCheckAll();
    var print = document.getElementById("print-button");
    if (print) { print.addEventListener("click", function () { window.print(); }); }
  });
})();
