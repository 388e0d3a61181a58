// The dashboard: first-pass yield, the failure Pareto and yield per
// revision, slot and recipe, refreshed every 30 seconds.
"use strict";

const sinceSel = document.getElementById("since");
const errBox = document.getElementById("error");

const pct = (x) => (x * 100).toFixed(1) + "%";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

function bar(tr, frac, cls) {
  const td = cell(tr, "", "barcell");
  const b = document.createElement("div");
  b.className = "hbar " + (cls || "");
  b.style.width = Math.round(Math.min(Math.max(frac, 0), 1) * 100) + "%";
  td.appendChild(b);
}

function empty(tbody, cols, what) {
  const tr = document.createElement("tr");
  const td = cell(tr, "No " + what + " in this period.", "empty-note");
  td.colSpan = cols;
  tbody.appendChild(tr);
}

async function get(path) {
  const r = await fetch(path + (path.includes("?") ? "&" : "?") + "since=" + encodeURIComponent(sinceSel.value));
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function groups(id, rows, what) {
  const tbody = document.querySelector(`#${id} tbody`);
  tbody.replaceChildren();
  if (!rows.length) return empty(tbody, 7, what);
  for (const g of rows) {
    const tr = document.createElement("tr");
    cell(tr, g.key);
    cell(tr, g.attempts, "n");
    cell(tr, g.passed, "n");
    cell(tr, g.unit_faults, "n");
    cell(tr, g.station_faults, "n");
    cell(tr, g.passed + g.unit_faults ? pct(g.yield) : "–", "n");
    bar(tr, g.yield, "yield");
    tbody.appendChild(tr);
  }
}

async function refresh() {
  document.getElementById("csv").href = "/api/export.csv?since=" + encodeURIComponent(sinceSel.value);
  try {
    const [all, pareto, rev, slot, recipe] = await Promise.all([
      get("/api/yield?by=all"), get("/api/pareto"),
      get("/api/yield?by=revision"), get("/api/yield?by=slot"), get("/api/yield?by=recipe"),
    ]);
    const t = all[0] || { units: 0, first_pass_yield: 0, attempts: 0, station_faults: 0, passed: 0 };
    document.getElementById("fpy").textContent = t.units ? pct(t.first_pass_yield) : "–";
    document.getElementById("final").textContent = t.units ? pct(t.final_yield) : "–";
    document.getElementById("units").textContent = t.units;
    document.getElementById("attempts").textContent = t.attempts;
    document.getElementById("stationfaults").textContent = t.station_faults;

    const tbody = document.querySelector("#pareto tbody");
    tbody.replaceChildren();
    if (!pareto.length) empty(tbody, 5, "failures");
    const top = pareto.length ? pareto[0].count : 1;
    for (const p of pareto) {
      const tr = document.createElement("tr");
      cell(tr, p.class);
      cell(tr, p.fault);
      cell(tr, p.count, "n");
      cell(tr, pct(p.share), "n");
      bar(tr, p.count / top, p.fault);
      tbody.appendChild(tr);
    }
    groups("by-revision", rev, "attempts");
    groups("by-slot", slot, "attempts");
    groups("by-recipe", recipe, "attempts");
    errBox.textContent = "";
  } catch (e) {
    errBox.textContent = "The dashboard could not be updated: " + e.message;
  }
}

sinceSel.addEventListener("change", refresh);
refresh();
setInterval(refresh, 30000);
