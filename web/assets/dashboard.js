// The dashboard: first-pass yield, the failure Pareto and yield per
// revision, slot and recipe, refreshed every 30 seconds; the trends (charts
// drawn by the station as SVG, see /api/charts) with their filters; the
// history of one unit.
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

// trendParams are the filters as query parameters of /api/dashboard,
// /api/charts and /api/export.
function trendParams() {
  const p = new URLSearchParams();
  const from = document.getElementById("from").value;
  const until = document.getElementById("until").value;
  p.set("since", from || sinceSel.value);
  if (until) p.set("until", until);
  for (const id of ["revision", "slot", "every", "shifts"]) {
    const v = document.getElementById(id).value.trim();
    if (v) p.set(id, v);
  }
  localStorage.setItem("unbrick-shifts", document.getElementById("shifts").value);
  return p;
}

async function refreshTrends() {
  const note = document.getElementById("t-note");
  const p = trendParams();
  document.getElementById("json").href = "/api/export?format=json&" + p.toString();
  let d;
  try {
    const r = await fetch("/api/dashboard?" + p.toString());
    d = await r.json();
    if (!r.ok) throw new Error(d.error || `HTTP ${r.status}`);
  } catch (e) {
    note.textContent = "No trends: " + e.message;
    for (const img of document.querySelectorAll("img.chart")) img.hidden = true;
    return;
  }
  const t = d.total;
  document.getElementById("t-fpy").textContent = t.visits ? pct(t.first_pass_yield) : "–";
  document.getElementById("t-final").textContent = t.visits ? pct(t.final_yield) : "–";
  document.getElementById("t-visits").textContent = t.visits;
  document.getElementById("t-uph").textContent = d.units_per_hour.overall.toFixed(1);
  document.getElementById("t-repeat").textContent = d.repeat_visitors;
  note.textContent = `${t.attempts} attempts; ${t.station_faults} station faults, ${t.refused} refused and ` +
    `${t.interrupted} interrupted are not counted against units. Read in ${d.took_ms.toFixed(0)} ms.`;
  const rev = document.getElementById("revision");
  const keep = rev.value;
  rev.replaceChildren(new Option("all", ""));
  for (const k of d.revisions || []) rev.appendChild(new Option(k, k));
  rev.value = keep;
  for (const img of document.querySelectorAll("img.chart")) {
    img.hidden = false;
    img.src = `/api/charts/${img.dataset.chart}.svg?` + p.toString() + "&t=" + Date.now();
  }
}

async function showUnit(ev) {
  if (ev) ev.preventDefault();
  const serial = document.getElementById("unit-serial").value.trim();
  const head = document.getElementById("unit-head");
  const tbody = document.querySelector("#unit-attempts tbody");
  tbody.replaceChildren();
  if (!serial) return;
  const r = await fetch("/api/units/" + encodeURIComponent(serial));
  const h = await r.json();
  if (!r.ok) { head.textContent = h.error || `HTTP ${r.status}`; return; }
  head.replaceChildren();
  head.append(`${h.serial}: revision ${h.revision || "?"}, ${h.attempts.length} attempts, ${h.visits} visits `);
  if (h.repeat) {
    const b = document.createElement("span");
    b.className = "repeat";
    b.textContent = `repeat visitor: visit ${h.visits}`;
    head.append(b);
  }
  for (const a of h.attempts) {
    const tr = document.createElement("tr");
    cell(tr, a.visit || "–");
    cell(tr, new Date(a.started).toLocaleString());
    cell(tr, a.slot);
    cell(tr, `${a.recipe} v${a.recipe_version}`);
    cell(tr, (a.recipe_sha256 || "").slice(0, 12));
    cell(tr, a.image_version ? `${a.image_version} (${a.image_sha256.slice(0, 12)})` : "–");
    cell(tr, a.outcome + (a.class ? ` (${a.class}, ${a.fault})` : ""));
    const td = cell(tr, "");
    const det = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = `${a.steps.length} steps`;
    const pre = document.createElement("pre");
    pre.textContent = a.steps.map((s) => `${s.seq} ${s.name} ${s.outcome} ${s.detail}`).join("\n") +
      "\n\n" + (a.console_pruned ? "(console log deleted by retention)" : a.console);
    det.append(sum, pre);
    td.appendChild(det);
    tbody.appendChild(tr);
  }
}

async function refresh() {
  document.getElementById("csv").href = "/api/export.csv?since=" + encodeURIComponent(sinceSel.value);
  refreshTrends();
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
document.getElementById("shifts").value = localStorage.getItem("unbrick-shifts") || "";
document.getElementById("filters").addEventListener("change", refreshTrends);
document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); refreshTrends(); });
document.getElementById("unit-form").addEventListener("submit", showUnit);
refresh();
setInterval(refresh, 30000);
