/* Playground: POST the form (session + CSRF token), read the server-sent events as they arrive,
   then show what the ledger recorded. Errors come in the API's one error shape. */
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form) return;
  var answer = document.getElementById("answer"), errBox = document.getElementById("run-error");
  var button = document.getElementById("run");

  function usd(v) {
    if (v === null || v === undefined) return "–";
    var n = Number(v), a = Math.abs(n);
    if (a >= 1) return "$" + n.toFixed(2);
    if (a === 0) return "$0.00";
    var places = Math.min(9, Math.max(2, 3 - Math.floor(Math.log10(a))));
    var s = a.toFixed(places).replace(/0+$/, "");
    if (/\.\d$/.test(s)) s += "0";
    return "$" + s;
  }

  function fact(name, text) {
    var el = form.ownerDocument.querySelector('[data-fact="' + name + '"]');
    if (el) el.textContent = (text === null || text === undefined || text === "") ? "–" : String(text);
  }

  function showError(message) {
    errBox.hidden = false;
    errBox.querySelector("li").textContent = message;
  }

  function done(f) {
    fact("model", f.model);
    fact("cost_usd", usd(f.cost_usd));
    fact("baseline_cost_usd", usd(f.baseline_cost_usd));
    fact("cache", f.cache_tier ? f.cache + " (tier " + f.cache_tier + ")" : "miss");
    fact("similarity", f.similarity === null ? "" : Number(f.similarity).toFixed(4));
    fact("cache_reason", f.cache_reason);
    fact("routing_reason", f.routing_reason);
    fact("request_id", f.request_id);
    form.dataset.state = "done";
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    errBox.hidden = true;
    answer.textContent = "";
    ["model", "cost_usd", "baseline_cost_usd", "cache", "similarity", "cache_reason",
     "routing_reason", "request_id"].forEach(function (n) { fact(n, ""); });
    form.dataset.state = "running";
    button.disabled = true;
    try {
      var resp = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: {"X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value}
      });
      if (!resp.ok) {
        var body = await resp.json().catch(function () { return null; });
        var e = body && body.error;
        showError(e ? e.message + (body.request_id ? " (request " + body.request_id + ")" : "") : "HTTP " + resp.status);
        form.dataset.state = "error";
        return;
      }
      var reader = resp.body.getReader(), decoder = new TextDecoder(), buf = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buf += decoder.decode(chunk.value, {stream: true});
        var parts = buf.split("\n\n");
        buf = parts.pop();
        parts.forEach(function (part) {
          if (part.indexOf("data: ") !== 0) return;
          var msg = JSON.parse(part.slice(6));
          if (msg.type === "delta") answer.textContent += msg.text;
          else if (msg.type === "done") done(msg);
          else if (msg.type === "error") { showError(msg.message); form.dataset.state = "error"; }
        });
      }
    } catch (e) {
      showError("The request failed: " + e);
      form.dataset.state = "error";
    } finally {
      button.disabled = false;
    }
  });
})();
