/* ART Stream UI: live numbers by polling /api/live, charts from the page's JSON block (Chart.js). */
"use strict";

(function () {
  const page = document.body.dataset.page;
  const fmtInt = new Intl.NumberFormat("en-US");

  function num(v) { return v === null || v === undefined ? "—" : fmtInt.format(v); }
  function rate(v) {
    if (v === null || v === undefined) return "—";
    return v < 100 ? v.toLocaleString("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1})
                   : fmtInt.format(Math.round(v));
  }
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  function row(cells) {
    const tr = document.createElement("tr");
    cells.forEach(c => tr.appendChild(c));
    return tr;
  }
  function fill(id, rows, empty, span) {
    const body = document.getElementById(id);
    if (!body) return;
    body.replaceChildren(...(rows.length ? rows : [row([Object.assign(cell(empty, "empty"), {colSpan: span})])]));
  }

  // ---- Live ------------------------------------------------------------------------------
  function renderLive(d) {
    const values = {events_in: rate(d.events_in), events_out: rate(d.events_out), open_sessions: num(d.open_sessions),
                    max_lag: num(d.max_lag), dead_letters: num(d.dead_letters)};
    for (const [key, text] of Object.entries(values)) {
      document.querySelectorAll(`[data-live="${key}"]`).forEach(el => { el.textContent = text; });
    }
    fill("throughput", d.throughput.map(t => {
      const tr = row([cell(t.name), cell(num(t.log_total), "num"), cell(rate(t.log_rate), "num"),
                      cell(num(t.store_total), "num"), cell(rate(t.store_rate), "num")]);
      tr.dataset.name = t.name;
      return tr;
    }), "", 5);
    fill("lag", d.lag.map(g => row([cell(g.group, "mono"), cell(g.topic, "mono"), cell(num(g.partitions), "num"),
                                    cell(num(g.committed), "num"), cell(num(g.highwater), "num"), cell(num(g.lag), "num")])),
         "no consumer group has committed on these topics" + (d.broker_error ? " (no broker)" : ""), 6);
    const current = new URLSearchParams(location.search).get("reason");
    fill("reasons", d.reasons.map(r => {
      const link = document.createElement("a");
      link.href = "/live?reason=" + encodeURIComponent(r.kind);
      link.textContent = r.kind;
      const first = document.createElement("td");
      first.appendChild(link);
      const tr = row([first, cell(r.topic, "mono"), cell(num(r.letters), "num"),
                      cell(r.last_at.slice(0, 19).replace("T", " "), "nowrap")]);
      if (r.kind === current) tr.className = "current";
      return tr;
    }), "no dead letters", 4);
    const note = document.getElementById("broker-note");
    if (note) { note.hidden = !d.broker_error; note.textContent = d.broker_error || ""; }
    const updated = document.getElementById("live-updated");
    if (updated) updated.textContent = "updated " + new Date(d.sampled_at * 1000).toLocaleTimeString("en-GB");
  }

  function pollLive() {
    const dot = document.getElementById("live-dot");
    const tick = () => fetch("/api/live", {cache: "no-store"})
      .then(r => { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(d => { renderLive(d); if (dot) dot.classList.remove("stale"); })
      .catch(() => { if (dot) dot.classList.add("stale"); })
      .finally(() => setTimeout(tick, 2000));
    tick();
  }

  // ---- Charts ----------------------------------------------------------------------------
  const palette = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#1098ad", "#c92a2a", "#5c940d", "#d6336c"];
  function data() {
    const el = document.getElementById("chart-data");
    return el ? JSON.parse(el.textContent) : {};
  }
  function chart(id, config) {
    const el = document.getElementById(id);
    if (!el || typeof Chart === "undefined") return null;
    config.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, config.options || {});
    return new Chart(el, config);
  }
  function timeTicks(v, i, ticks) {  // UTC; seconds shown when the axis spans less than two hours
    const span = ticks.length > 1 ? ticks[ticks.length - 1].value - ticks[0].value : 0;
    const iso = new Date(v).toISOString();
    return span < 2 * 3600 * 1000 ? iso.slice(11, 19) : iso.slice(5, 16).replace("T", " ");
  }

  function timeAxis(xs, padMs, title) {  // a lone point gets a sensible window instead of Chart.js's ±1 default
    const lo = Math.min(...xs), hi = Math.max(...xs), pad = Math.max(padMs, (hi - lo) * 0.03);
    return {type: "linear", min: lo - pad, max: hi + pad, ticks: {callback: timeTicks, maxTicksLimit: 8},
            title: {display: true, text: title}};
  }

  function versionCharts() {
    const d = data();
    if (!d.points) return;
    const lo = Math.min(0, ...d.points.flat()), hi = Math.max(1, ...d.points.flat());
    chart("scatter", {
      type: "scatter",
      data: {datasets: [
        {label: "trajectory", data: d.points.map(p => ({x: p[0], y: p[1]})), backgroundColor: "rgba(59,91,219,0.45)", pointRadius: 3},
        {label: "A = B", type: "line", data: [{x: lo, y: lo}, {x: hi, y: hi}], borderColor: "#adb5bd", borderDash: [4, 4], pointRadius: 0}]},
      options: {scales: {x: {min: lo, max: hi, title: {display: true, text: "A · " + d.a}},
                         y: {min: lo, max: hi, title: {display: true, text: "B · " + d.b}}},
                plugins: {legend: {display: false}}},
    });
    chart("histogram", {
      type: "bar",
      data: {labels: d.histogram.map(b => ((b.from + b.to) / 2).toFixed(3)),  // one bin when every shift is equal
             datasets: [{label: "trajectories", data: d.histogram.map(b => b.n), backgroundColor: "#3b5bdb"}]},
      options: {scales: {x: {title: {display: true, text: "shift (B − A), bin centre"}}, y: {title: {display: true, text: "trajectories"}, beginAtZero: true}},
                plugins: {legend: {display: false}}},
    });
  }

  function modelCharts() {
    const d = data();
    const c = d.curves;
    if (c && (c.train_loss.length || Object.keys(c.evals).length)) {
      const sets = [{label: "train loss", data: c.train_loss.map(p => ({x: p[0], y: p[1]})), borderColor: palette[0],
                     backgroundColor: palette[0], pointRadius: 0, borderWidth: 1.5}];
      Object.entries(c.evals).filter(([k]) => k.endsWith("loss")).forEach(([k, pts], i) => sets.push(
        {label: k.replace(/_/g, " "), data: pts.map(p => ({x: p[0], y: p[1]})), borderColor: palette[i + 1],
         backgroundColor: palette[i + 1], pointRadius: 3}));
      chart("loss", {type: "line", data: {datasets: sets},
                     options: {parsing: false, scales: {x: {type: "linear", title: {display: true, text: "step"}},
                                                        y: {title: {display: true, text: "loss"}}}}});
    }
    if (d.learning && d.learning.length) {
      const loops = {};
      d.learning.forEach(p => { (loops[p.loop_id || p.model_id] = loops[p.loop_id || p.model_id] || []).push(p); });
      const sets = [];
      Object.entries(loops).forEach(([name, pts], i) => {
        const color = palette[i % palette.length];
        const xy = pts.map(p => ({x: Date.parse(p.finished_at), y: p.success_rate, model: p.model_id, round: p.round}));
        sets.push({label: name, data: xy, borderColor: color, backgroundColor: color, pointRadius: 4});
        sets.push({label: name + " 95% low", data: pts.map(p => ({x: Date.parse(p.finished_at), y: p.success_lo})),
                   borderColor: color + "55", borderDash: [3, 3], pointRadius: 0, fill: false});
        sets.push({label: name + " 95% high", data: pts.map(p => ({x: Date.parse(p.finished_at), y: p.success_hi})),
                   borderColor: color + "55", borderDash: [3, 3], pointRadius: 0, fill: "-1", backgroundColor: color + "14"});
      });
      chart("learning", {type: "line", data: {datasets: sets},
        options: {parsing: false, scales: {x: timeAxis(d.learning.map(p => Date.parse(p.finished_at)), 60000, "evaluated (UTC)"),
                                           y: {min: 0, max: 1, title: {display: true, text: "held-out success"}}},
                  plugins: {legend: {labels: {filter: item => !item.text.includes("95%")}},
                            tooltip: {callbacks: {label: ctx => {
                              const p = ctx.raw; return p.model ? `${p.model} (round ${p.round}): ${(p.y * 100).toFixed(1)}%` : "";
                            }}}}}});
    }
    if (d.success && Object.keys(d.success).length) {
      const sets = Object.entries(d.success).map(([model, pts], i) => ({
        label: model, data: pts.map(p => ({x: p.t, y: p.rate, runs: p.runs})), borderColor: palette[i % palette.length],
        backgroundColor: palette[i % palette.length], pointRadius: pts.length < 10 ? 4 : 2, borderWidth: 1.5}));
      chart("success", {type: "line", data: {datasets: sets},
        options: {parsing: false, scales: {x: timeAxis(Object.values(d.success).flat().map(p => p.t), (d.bucket_s || 60) * 1000, "completed (UTC)"),
                                           y: {min: 0, max: 1, title: {display: true, text: "success rate"}}},
                  plugins: {tooltip: {callbacks: {label: ctx => `${ctx.dataset.label}: ${(ctx.raw.y * 100).toFixed(1)}% of ${ctx.raw.runs}`}}}}});
    }
  }

  if (page === "live") pollLive();
  if (page === "versions") versionCharts();
  if (page === "models") modelCharts();
})();
