// Statistics of interception (拦截统计): records by status per rule, region and item, and by month.
// Data comes from a JSON block (the CSP allows no inline script).
document.addEventListener("DOMContentLoaded", function () {
  var data = document.getElementById("stats-data");
  if (!data || !window.echarts) return;
  var d = JSON.parse(data.textContent);
  var charts = [];
  var colors = { open: "#e08a00", confirmed: "#c62828", cleared: "#2e7d32" };

  function stacked(id, s) {
    var el = document.getElementById(id);
    if (!el || !s.names.length) return;
    var chart = echarts.init(el);
    var bar = function (name, key) {
      return { name: name, type: "bar", stack: "all", barMaxWidth: 48, data: s[key], itemStyle: { color: colors[key] } };
    };
    chart.setOption({
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { data: ["待核实", "核实属实", "核实排除"] },
      grid: { bottom: 100 },
      xAxis: { type: "category", data: s.names, axisLabel: { interval: 0, rotate: s.names.length > 5 ? 30 : 0 } },
      yAxis: { type: "value", name: "条", minInterval: 1 },
      series: [bar("待核实", "open"), bar("核实属实", "confirmed"), bar("核实排除", "cleared")]
    });
    charts.push(chart);
  }

  function months(id, s) {
    var el = document.getElementById(id);
    if (!el || !s.names.length) return;
    var chart = echarts.init(el);
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: { data: ["拦截记录", "涉及金额（元）"] },
      xAxis: { type: "category", data: s.names },
      yAxis: [{ type: "value", name: "条", minInterval: 1 }, { type: "value", name: "元" }],
      series: [
        { name: "拦截记录", type: "bar", barMaxWidth: 48, data: s.flags, itemStyle: { color: "#c62828" } },
        { name: "涉及金额（元）", type: "line", yAxisIndex: 1, data: s.amount.map(Number), itemStyle: { color: "#1565c0" } }
      ]
    });
    charts.push(chart);
  }

  stacked("chart-rules", d.rules);
  stacked("chart-regions", d.regions);
  stacked("chart-items", d.items);
  months("chart-months", d.months);
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
});
