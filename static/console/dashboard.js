/* Dashboard: live rows over the websocket (/ws/dashboard), htmx refresh of the summary, and the
   cache-hits chart (uPlot). While the socket is down the summary is polled every 5 s (the htmx
   trigger on #live asks asahiLive.connected()) and the socket is retried with backoff. */
(function () {
  "use strict";
  var MAX_ROWS = 25;
  var TIERS = {0: "miss", 1: "exact", 2: "semantic", 3: "intermediate"};
  var socket = null, open = false, retry = 1000, refreshTimer = null, lastRefresh = 0;

  function usd(value) {  // the same rule as the server's |usd filter
    var n = Number(value);
    if (!isFinite(n)) return String(value);
    var sign = n < 0 ? "-" : "", a = Math.abs(n);
    if (a >= 1) return sign + "$" + a.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    if (a === 0) return "$0.00";
    var places = Math.min(9, Math.max(2, 3 - Math.floor(Math.log10(a))));
    var parts = a.toFixed(places).split("."), frac = parts[1].replace(/0+$/, "");
    while (frac.length < 2) frac += "0";
    if (/^0*$/.test(frac)) sign = "";
    return sign + "$" + parts[0] + "." + frac;
  }

  function setStatus(state, text) {
    var el = document.getElementById("live-status");
    if (el) { el.dataset.state = state; el.textContent = text; }
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;  // never innerHTML: model names and reasons are data
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function addRows(rows) {
    var body = document.querySelector("#latest tbody");
    if (!body) return;
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    rows.forEach(function (r) {
      if (body.querySelector('tr[data-request-id="' + CSS.escape(r.request_id) + '"]')) return;
      var tr = document.createElement("tr");
      tr.dataset.requestId = r.request_id;
      tr.className = "fresh";
      cell(tr, r.created_at.slice(11, 19));
      cell(tr, r.model);
      cell(tr, r.status === "ok" ? (TIERS[r.cache_tier] || String(r.cache_tier)) : r.status);
      cell(tr, usd(r.cost_usd));
      cell(tr, Math.round(r.latency_ms) + " ms");
      cell(tr, r.routing_reason, "reason");
      body.insertBefore(tr, body.firstChild);
    });
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
  }

  function scheduleRefresh() {  // the summary at most every 2 s, however busy the feed is
    if (refreshTimer) return;
    var wait = Math.max(250, 2000 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(function () {
      refreshTimer = null; lastRefresh = Date.now();
      document.body.dispatchEvent(new CustomEvent("asahi:refresh"));
    }, wait);
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/dashboard";
    try { socket = new WebSocket(url); } catch (e) { return retryLater(); }
    socket.onopen = function () { open = true; retry = 1000; setStatus("live", "live"); };
    socket.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      addRows(msg.rows || []);
      scheduleRefresh();
    };
    socket.onclose = function (ev) {
      open = false;
      if (ev.code === 4401 || ev.code === 4403) { setStatus("off", "refreshing every 5 s"); return; }
      retryLater();
    };
  }

  function retryLater() {
    setStatus("polling", "refreshing every 5 s");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30000);
  }

  var chart = null;
  function drawChart() {
    var el = document.getElementById("hits-chart"), data = document.getElementById("hits-data");
    if (!el || !data || !window.uPlot) return;
    var d = JSON.parse(data.textContent);
    if (chart) { chart.destroy(); chart = null; }
    el.textContent = "";
    if (!d.t.length) { el.textContent = "No traffic in this period."; el.className = "chart muted"; return; }
    chart = new uPlot({
      width: Math.max(280, el.clientWidth), height: 200,
      series: [{}, {label: "cache hits", stroke: "#FF6B35", fill: "rgba(255,107,53,0.15)", width: 2},
               {label: "requests", stroke: "#5F6B7A", width: 1}],
      axes: [{}, {size: 48}], scales: {x: {time: true}}
    }, [d.t, d.hits, d.requests], el);
  }

  window.asahiLive = {connected: function () { return open; }};
  document.addEventListener("DOMContentLoaded", function () { drawChart(); connect(); });
  document.body.addEventListener("htmx:afterSwap", drawChart);
})();
