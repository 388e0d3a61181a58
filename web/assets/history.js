// The unit history page: every attempt on one unit, oldest first, with its
// steps, console log, recipe and image. Search by serial number or by the
// barcode on its label (a scanner types it into the search box).
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

const when = (t) => (t ? new Date(t).toLocaleString() : "–");
function took(a, b) {
  if (!a || !b) return "";
  const s = (new Date(b) - new Date(a)) / 1000;
  return s < 60 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
}

async function search(q) {
  q = q.trim();
  $("matches").textContent = "";
  $("attempts").textContent = "";
  $("unit").hidden = true;
  if (!q) return;
  history.replaceState(null, "", "/history?q=" + encodeURIComponent(q));
  $("note").textContent = "Searching…";
  let a;
  try {
    const r = await fetch("/api/history?q=" + encodeURIComponent(q), { credentials: "same-origin" });
    a = await r.json();
    if (!r.ok) { $("note").textContent = a.error || `The search failed (HTTP ${r.status}).`; return; }
  } catch (e) {
    $("note").textContent = "The station does not answer.";
    return;
  }
  if (!a.history) {
    $("note").textContent = a.matches.length ? `${a.matches.length} units match “${q}”: pick one.` : `No unit matches “${q}”.`;
    for (const m of a.matches) {
      const b = el("button", "small", $("matches"), m);
      b.type = "button";
      b.addEventListener("click", () => { $("q").value = m; search(m); });
    }
    return;
  }
  render(a.history);
}

function render(h) {
  const u = h;
  const n = h.attempts.length;
  $("note").textContent = h.visits > 1 ? `This unit came to the bench ${h.visits} times (${n} attempts).` :
    n > 1 ? `${n} attempts on this unit.` : "";
  $("unit").hidden = false;
  $("u-serial").textContent = u.serial;
  $("u-facts").textContent = [u.model, u.chip && "chip " + u.chip, u.revision && "revision " + u.revision, u.protocol,
    "first seen " + when(u.first_seen), "last seen " + when(u.last_seen)].filter(Boolean).join(" · ");
  const list = $("attempts");
  h.attempts.forEach((a, i) => {
    const d = el("details", "attempt " + a.outcome, list);
    d.dataset.attempt = a.id;
    if (i === h.attempts.length - 1) d.open = true;
    el("summary", "", d, (a.visit ? `Visit ${a.visit} · ` : "") + `attempt #${a.id} · ${when(a.started)} · slot ${a.slot} · ${a.outcome.toUpperCase()}` +
      (a.class ? ` (${a.class})` : ""));
    const body = el("div", "", d);
    const facts = el("dl", "facts", body);
    const fact = (k, v) => { if (v) { el("dt", "", facts, k); el("dd", "", facts, v); } };
    fact("Recipe", a.recipe + (a.recipe_version ? ` v${a.recipe_version}` : "") + (a.recipe_sha256 ? ` (sha256 ${a.recipe_sha256.slice(0, 16)}…)` : ""));
    fact("Image", (a.image_version ? `v${a.image_version} ` : "") + (a.image_sha256 ? `sha256 ${a.image_sha256}` : "none written"));
    fact("Strategy", a.strategy);
    fact("Why", a.reason);
    fact("What to do", a.hint);
    fact("Started by", a.operator);
    fact("Took", took(a.started, a.finished));
    if (a.steps && a.steps.length) {
      const t = el("table", "", body);
      const hr = el("tr", "", el("thead", "", t));
      for (const c of ["#", "Step", "Strategy", "Outcome", "Detail", "Took"]) el("th", "", hr, c);
      const tb = el("tbody", "", t);
      for (const s of a.steps) {
        const tr = el("tr", "", tb);
        for (const c of [s.seq, s.name, s.strategy, s.outcome, s.detail, took(s.started, s.finished)]) el("td", "", tr, String(c ?? ""));
      }
    }
    el("h3", "", body, "Console");
    el("pre", "console", body, a.console || "(nothing printed)");
  });
}

$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  search($("q").value);
});
const first = new URLSearchParams(location.search).get("q");
if (first) {
  $("q").value = first;
  search(first);
}
