/* Analytics trends: cost (left axis), requests and cache hit rate % (right axis), with uPlot. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("trend-chart"), data = document.getElementById("trend-data");
    if (!el || !data || !window.uPlot) return;
    var d = JSON.parse(data.textContent);
    if (!d.t.length) { el.textContent = "No data."; return; }
    // Costs run from fractions of a cent to thousands: two significant digits below a dollar
    // (uPlot's default rounds $0.000018 to "0").
    function usd(v) {
      if (v == null) return "--";
      var a = Math.abs(v);
      return "$" + (a === 0 ? "0" : a >= 1 ? v.toFixed(2) : String(Number(v.toPrecision(2))));
    }
    new uPlot({
      width: Math.max(280, el.clientWidth), height: 240,
      series: [{}, {label: "cost", stroke: "#FF6B35", width: 2, scale: "usd",
                    value: function (u, v) { return usd(v); }},
               {label: "requests", stroke: "#5F6B7A", width: 1, scale: "n"},
               {label: "cache hit %", stroke: "#127A4A", width: 1, scale: "n"}],
      axes: [{}, {scale: "usd", size: 80, values: function (u, splits) { return splits.map(usd); }},
             {scale: "n", side: 1, size: 48}],
      scales: {x: {time: true}}
    }, [d.t, d.cost, d.requests, d.hit_rate], el);
  });
})();
