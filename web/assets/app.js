// The operator page: one tile per slot, kept live by the websocket at /ws,
// which sends a snapshot of every slot and then the slots that changed.
"use strict";

const tiles = document.getElementById("tiles");
const conn = document.getElementById("conn");
const toast = document.getElementById("toast");

const words = {
  empty: "Empty", present: "Present", running: "Running", passed: "Passed",
  failed: "Failed", interrupted: "Interrupted", quarantined: "Quarantined",
};

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

function tile(n) {
  let t = document.getElementById("slot-" + n);
  if (t) return t;
  t = el("section", "tile");
  t.id = "slot-" + n;
  t.dataset.slot = n;
  const top = el("div", "top", t);
  el("span", "num", top).textContent = n;
  el("span", "name", top);
  el("span", "state", top);
  el("div", "step", t);
  const bar = el("div", "bar", t);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  el("div", "fill", bar);
  el("span", "pct", bar);
  el("div", "serial", t);
  el("div", "reason", t);
  el("div", "hint", t);
  const actions = el("div", "actions", t);
  const start = el("button", "start", actions);
  start.type = "button";
  start.textContent = "Start";
  start.addEventListener("click", () => startSlot(Number(t.dataset.slot), start));
  const release = el("button", "release", actions);
  release.type = "button";
  release.textContent = "Release";
  release.addEventListener("click", () => releaseSlot(Number(t.dataset.slot), release));
  // Keep the tiles in slot order.
  const after = [...tiles.children].find((c) => Number(c.dataset.slot) > n);
  tiles.insertBefore(t, after || null);
  return t;
}

function show(v) {
  const t = tile(v.slot);
  const q = (c) => t.querySelector("." + c);
  t.dataset.state = v.state;
  q("name").textContent = v.name || "";
  q("state").textContent = words[v.state] || v.state;
  q("step").textContent = v.state === "running" || v.state === "failed" || v.state === "interrupted" ? (v.step || "") : "";
  const pct = Math.round(Math.min(Math.max(v.progress || 0, 0), 1) * 100);
  q("fill").style.width = pct + "%";
  q("pct").textContent = pct + "%";
  // The bar shows work: a running job, a pass, or how far a job got
  // before it stopped.
  q("bar").hidden = !(v.state === "running" || v.state === "passed" ||
    ((v.state === "failed" || v.state === "interrupted") && pct > 0));
  q("bar").setAttribute("aria-valuenow", String(pct));
  t.dataset.progress = String(pct);
  // Which unit, and the recipe (its board and revision) the slot runs.
  q("serial").textContent = [v.serial ? "S/N " + v.serial : "", v.recipe || ""].filter(Boolean).join(" · ");
  let reason = "";
  if (v.state === "failed" || v.state === "interrupted" || v.state === "quarantined") {
    reason = v.reason || "";
    if (v.class && !reason.includes(v.class)) reason = v.class + (reason ? ": " + reason : "");
    if (v.fault === "station") reason += " (station fault, not the unit's)";
  }
  q("reason").textContent = reason;
  q("hint").textContent = v.hint || "";
  const start = q("start");
  start.hidden = !v.start;
  start.textContent = v.state === "present" ? "Start" : "Start again";
  q("release").hidden = !v.release;
}

function snapshot(slots) {
  const keep = new Set(slots.map((v) => "slot-" + v.slot));
  for (const c of [...tiles.children]) if (!keep.has(c.id)) c.remove();
  slots.forEach(show);
}

let toastTimer;
function say(msg) {
  toast.textContent = msg;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, 8000);
}
toast.addEventListener("click", () => { toast.hidden = true; });

async function post(url, body) {
  const opts = { method: "POST", credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(url, opts);
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  return { ok: r.ok, status: r.status, data };
}

// Barcode scanner: a USB scanner types the label's code fast and ends it
// with Enter. The last code scanned goes with the next Start tapped, for
// units whose chip cannot report a serial number.
let scanned = "";
let keys = "";
let lastKey = 0;
const scanBadge = document.getElementById("scan");
document.addEventListener("keydown", (ev) => {
  if (dialog.open || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const now = performance.now();
  if (now - lastKey > 100) keys = "";
  lastKey = now;
  if (ev.key === "Enter") {
    if (keys.length >= 4) {
      scanned = keys;
      scanBadge.textContent = `scanned ${scanned}: tap Start on its slot`;
      scanBadge.hidden = false;
    }
    keys = "";
  } else if (ev.key.length === 1) {
    keys += ev.key;
  }
});

async function startSlot(n, button) {
  button.disabled = true;
  try {
    const body = scanned ? { serial: scanned } : undefined;
    const r = await post(`/api/slots/${n}/start`, body);
    if (r.ok && scanned) {
      scanned = "";
      scanBadge.hidden = true;
    }
    if (!r.ok) say(r.data.error || `Slot ${n} did not start (HTTP ${r.status}).`);
  } catch (e) {
    say(`Slot ${n} did not start: the station does not answer.`);
  } finally {
    button.disabled = false;
  }
}

// Supervisor login: a dialog, then the action that asked for it.
const dialog = document.getElementById("login");
const form = document.getElementById("loginform");
const loginErr = document.getElementById("loginerr");
let afterLogin = null;

function askLogin(why, then) {
  document.getElementById("loginwhy").textContent = why;
  loginErr.textContent = "";
  afterLogin = then;
  dialog.showModal();
  document.getElementById("loginpassword").focus();
}
document.getElementById("logincancel").addEventListener("click", () => { afterLogin = null; dialog.close(); });
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = document.getElementById("loginname").value;
  const pw = document.getElementById("loginpassword");
  const r = await post("/api/login", { name, password: pw.value });
  pw.value = "";
  if (!r.ok) {
    loginErr.textContent = r.data.error || `Login failed (HTTP ${r.status}).`;
    return;
  }
  dialog.close();
  session();
  const then = afterLogin;
  afterLogin = null;
  if (then) then();
});

async function releaseSlot(n, button) {
  button.disabled = true;
  try {
    const r = await post(`/api/slots/${n}/release`);
    if (r.status === 401) {
      askLogin(`Releasing slot ${n} needs a supervisor.`, () => releaseSlot(n, button));
    } else if (!r.ok) {
      say(r.data.error || `Slot ${n} was not released (HTTP ${r.status}).`);
    }
  } catch (e) {
    say(`Slot ${n} was not released: the station does not answer.`);
  } finally {
    button.disabled = false;
  }
}

const superButton = document.getElementById("super");
let supervisor = false;
async function session() {
  try {
    const r = await fetch("/api/session", { credentials: "same-origin" });
    const s = await r.json();
    supervisor = s.supervisor;
    superButton.textContent = s.supervisor ? `Log out ${s.by}` : "Supervisor";
    superButton.hidden = !s.enabled && !s.supervisor;
  } catch (e) { /* the websocket shows that the station is away */ }
}
superButton.addEventListener("click", async () => {
  if (supervisor) {
    await post("/api/logout");
    session();
  } else {
    askLogin("", null);
  }
});

// The websocket, reconnecting with a growing pause while the station is away.
let wait = 500;
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    wait = 500;
    conn.textContent = "live";
    conn.className = "conn online";
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "snapshot") snapshot(m.slots);
    else m.slots.forEach(show);
  };
  ws.onclose = () => {
    conn.textContent = "station offline: reconnecting…";
    conn.className = "conn offline";
    setTimeout(connect, wait);
    wait = Math.min(wait * 2, 5000);
  };
}
session();
connect();
