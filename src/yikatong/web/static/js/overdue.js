// Overdue board (超期督办): overdue applications per office, most overdue first. Data comes from a JSON block (CSP).
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("overdue-chart");
  var data = document.getElementById("overdue-data");
  if (!el || !data || !window.echarts) return;
  var d = JSON.parse(data.textContent);
  var chart = echarts.init(el);
  chart.setOption({
    tooltip: { trigger: "axis" },
    legend: { data: ["超期件数", "超期工作日"] },
    grid: { bottom: 90 },
    xAxis: { type: "category", data: d.names, axisLabel: { interval: 0, rotate: d.names.length > 6 ? 30 : 0 } },
    yAxis: [{ type: "value", name: "件" }, { type: "value", name: "工作日" }],
    series: [
      { name: "超期件数", type: "bar", data: d.counts, itemStyle: { color: "#c62828" } },
      { name: "超期工作日", type: "line", yAxisIndex: 1, data: d.days, itemStyle: { color: "#1565c0" } }
    ]
  });
  window.addEventListener("resize", function () { chart.resize(); });
});
