// Card-holding rate by child region (ECharts). Data comes from a JSON block: the CSP allows no inline script.
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("rate-chart");
  var data = document.getElementById("chart-data");
  if (!el || !data || !window.echarts) return;
  var d = JSON.parse(data.textContent);
  var chart = echarts.init(el);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { data: ["享受补贴人员", "持卡率(%)"] },
    xAxis: { type: "category", data: d.names, axisLabel: { interval: 0, rotate: d.names.length > 8 ? 30 : 0 } },
    yAxis: [{ type: "value", name: "人" }, { type: "value", name: "%", max: 100, min: function (v) { return Math.max(0, Math.floor(v.min - 1)); } }],
    series: [
      { name: "享受补贴人员", type: "bar", data: d.beneficiaries, itemStyle: { color: "#c62828" } },
      { name: "持卡率(%)", type: "line", yAxisIndex: 1, data: d.rates, itemStyle: { color: "#1565c0" } }
    ]
  });
  window.addEventListener("resize", function () { chart.resize(); });
});
