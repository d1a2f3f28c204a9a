// The passbook's print button (inline handlers are refused by the Content-Security-Policy).
document.addEventListener("DOMContentLoaded", function () {
  var print = document.getElementById("print-button");
  if (print) { print.addEventListener("click", function () { window.print(); }); }
});
