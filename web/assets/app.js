// The operator page: every slot of the bench at a glance, kept live by the
// websocket at /ws (a snapshot of every slot, then the slots that changed,
// at most about ten times a second). Tapping a cell opens its detail.
"use strict";

const $ = (id) => document.getElementById(id);
const tiles = $("tiles");
const conn = $("conn");
const toast = $("toast");

// Each state has its own colour (style.css), its own icon and its own word.
const looks = {
  empty: ["○", "Empty"],
  present: ["●", "Ready"],
  running: ["▶", "Running"],
  passed: ["✔", "Passed"],
  failed: ["✖", "Failed"],
  interrupted: ["■", "Stopped"],
  quarantined: ["⚠", "Blocked"],
};
// The words the detail uses, in full.
const longWords = {
  empty: "Empty", present: "Unit ready", running: "Running", passed: "Passed",
  failed: "Failed", interrupted: "Stopped (interrupted)", quarantined: "Blocked (quarantined)",
};

const kiosk = new URLSearchParams(location.search).has("kiosk");
if (kiosk) document.body.classList.add("kiosk");

const slots = new Map(); // slot number -> latest view
const eta = new Map(); // slot number -> {key, t0, p0}

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.appendChild(e);
  return e;
}

function cell(n) {
  let t = $("slot-" + n);
  if (t) return t;
  t = el("button", "cell");
  t.type = "button";
  t.id = "slot-" + n;
  t.dataset.slot = n;
  const top = el("span", "top", t);
  el("span", "num", top).textContent = n;
  el("span", "repeat", top).hidden = true;
  el("span", "icon", top);
  el("span", "word", t);
  el("span", "sub", t); // the step or serial number, where the cell has room
  const bar = el("span", "bar", t);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  el("span", "fill", bar);
  el("span", "pct", bar);
  t.addEventListener("click", () => openDetail(Number(t.dataset.slot)));
  // Keep the cells in slot order.
  const after = [...tiles.children].find((c) => Number(c.dataset.slot) > n);
  tiles.insertBefore(t, after || null);
  return t;
}

function pctOf(v) {
  return Math.round(Math.min(Math.max(v.progress || 0, 0), 1) * 100);
}

function show(v) {
  const prev = slots.get(v.slot);
  slots.set(v.slot, v);
  const t = cell(v.slot);
  const q = (c) => t.querySelector("." + c);
  const [icon, word] = looks[v.state] || ["?", v.state];
  t.dataset.state = v.state;
  q("icon").textContent = icon;
  q("word").textContent = word;
  q("sub").textContent = v.state === "running" ? (v.step || "") : (v.serial || "");
  const pct = pctOf(v);
  q("fill").style.width = pct + "%";
  q("pct").textContent = pct + "%";
  q("bar").hidden = !(v.state === "running" || ((v.state === "failed" || v.state === "interrupted") && pct > 0));
  q("bar").setAttribute("aria-valuenow", String(pct));
  t.dataset.progress = String(pct);
  t.setAttribute("aria-label", `Slot ${v.slot}: ${longWords[v.state] || v.state}` +
    (v.state === "running" ? `, ${v.step || ""} ${pct}%` : "") + (v.serial ? `, serial ${v.serial}` : ""));
  trackETA(v);
  if (v.serial && (!prev || prev.serial !== v.serial || prev.attempt !== v.attempt)) visits(v);
  else if (!v.serial) markRepeat(t, 0);
  if (v.state === "failed" && prev && prev.state !== "failed") alertFailure(v);
  if (v.state !== "failed") t.classList.remove("fresh");
  if (prev && prev.state !== v.state && ["passed", "failed", "interrupted"].includes(v.state)) summarySoon();
  if (detailSlot === v.slot) {
    renderDetail();
    if (prev && prev.state !== v.state && v.serial) visits(v, true);
  }
}

function snapshot(list) {
  const keep = new Set(list.map((v) => "slot-" + v.slot));
  for (const c of [...tiles.children]) if (!keep.has(c.id)) { c.remove(); slots.delete(Number(c.dataset.slot)); }
  list.forEach(show);
  layout();
}

// layout sizes the grid so that every slot fits the screen at once: it
// picks the number of columns that gives the biggest cells.
function layout() {
  const n = Math.max(tiles.children.length, 1);
  const top = tiles.getBoundingClientRect().top;
  const W = tiles.clientWidth, H = Math.max(window.innerHeight - top, 60);
  const gap = 4;
  let best = { cols: 1, rows: n, size: 0, w: 0, h: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = (W - gap * (cols + 1)) / cols, h = (H - gap * (rows + 1)) / rows;
    const size = Math.min(w, h * 1.15); // cells a little wider than high read best
    if (size > best.size) best = { cols, rows, size, w, h };
  }
  tiles.style.height = H + "px";
  tiles.style.gridTemplateColumns = `repeat(${best.cols}, minmax(0, 1fr))`;
  tiles.style.gridTemplateRows = `repeat(${best.rows}, minmax(0, 1fr))`;
  tiles.style.setProperty("--cell", Math.max(Math.min(best.w, best.h * 1.25), 40) + "px");
  tiles.dataset.cols = best.cols;
}
window.addEventListener("resize", layout);

// Time left in the current step, from how fast its progress moves.
function trackETA(v) {
  const key = `${v.attempt}/${v.step}`;
  const e = eta.get(v.slot);
  if (v.state !== "running") { eta.delete(v.slot); return; }
  if (!e || e.key !== key || v.progress < e.p0) eta.set(v.slot, { key, t0: performance.now(), p0: v.progress || 0 });
}
function timeLeft(v) {
  const e = eta.get(v.slot);
  if (!e || v.state !== "running") return "";
  const dp = (v.progress || 0) - e.p0;
  const dt = (performance.now() - e.t0) / 1000;
  if (dp < 0.05 || dt < 0.4 || v.progress >= 1) return "";
  const s = Math.round((dt / dp) * (1 - v.progress));
  return s < 60 ? `about ${s} s left in this step` : `about ${Math.round(s / 60)} min left in this step`;
}

// Repeat visitors: a unit that was on the bench before carries a badge.
const visitCache = new Map();
async function visits(v, fresh) {
  const key = v.serial + "#" + v.attempt;
  let h = visitCache.get(key);
  if (!h || fresh) {
    try {
      const r = await fetch("/api/history?brief=1&q=" + encodeURIComponent(v.serial), { credentials: "same-origin" });
      if (!r.ok) return;
      const a = await r.json();
      h = a.history && a.history.serial === v.serial ? a.history : { attempts: [] };
      visitCache.set(key, h);
    } catch (e) { return; }
  }
  const cur = slots.get(v.slot);
  if (!cur || cur.serial !== v.serial) return;
  const before = h.attempts.filter((a) => a.id !== v.attempt).length;
  markRepeat(cell(v.slot), before);
  if (detailSlot === v.slot) renderVisits(h, v);
}
function markRepeat(t, before) {
  const r = t.querySelector(".repeat");
  r.hidden = before === 0;
  r.textContent = "↻" + before;
  r.title = before ? `seen ${before} time(s) before` : "";
  t.dataset.repeat = String(before);
}

// Failures: the cell pulses, a banner names the slot, and an optional beep.
let soundOn = localStorage.getItem("unbrick.sound") === "on";
const soundButton = $("sound");
function showSound() {
  soundButton.textContent = soundOn ? "♪ on" : "♪ off";
  soundButton.setAttribute("aria-pressed", String(soundOn));
}
showSound();
soundButton.addEventListener("click", () => {
  soundOn = !soundOn;
  localStorage.setItem("unbrick.sound", soundOn ? "on" : "off");
  showSound();
  if (soundOn) beep();
});
let audio;
function beep() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880;
    g.gain.value = 0.2;
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.4);
  } catch (e) { /* no audio on this screen */ }
}
const alertBox = $("alert");
const failedQueue = [];
function alertFailure(v) {
  cell(v.slot).classList.add("fresh");
  if (!failedQueue.includes(v.slot)) failedQueue.push(v.slot);
  showAlert();
  if (soundOn) beep();
}
function showAlert() {
  while (failedQueue.length && (slots.get(failedQueue[0]) || {}).state !== "failed") failedQueue.shift();
  if (!failedQueue.length) { alertBox.hidden = true; return; }
  const v = slots.get(failedQueue[0]);
  const more = failedQueue.length > 1 ? ` (+${failedQueue.length - 1} more)` : "";
  alertBox.textContent = `✖ Slot ${v.slot} failed: ${v.class || v.reason || "see why"}${more}. Tap to see what to do.`;
  alertBox.dataset.failed = v.slot;
  alertBox.hidden = false;
}
alertBox.addEventListener("click", () => openDetail(Number(alertBox.dataset.failed)));
function acknowledge(n) {
  const i = failedQueue.indexOf(n);
  if (i >= 0) failedQueue.splice(i, 1);
  cell(n).classList.remove("fresh");
  showAlert();
}

// The summary strip: the shift at a glance.
let summaryTimer;
function summarySoon() {
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(summary, 700);
}
async function summary() {
  try {
    const r = await fetch("/api/summary", { credentials: "same-origin" });
    if (!r.ok) return;
    const s = await r.json();
    $("s-units").textContent = s.units;
    $("s-passed").textContent = s.passed;
    $("s-failed").textContent = s.failed;
    $("s-fpy").textContent = s.units ? (s.first_pass_yield * 100).toFixed(0) + "%" : "–";
    $("s-rate").textContent = s.per_hour;
  } catch (e) { /* the connection badge says the station is away */ }
}
setInterval(summary, 30000);

let toastTimer;
function say(msg) {
  toast.textContent = msg;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, 8000);
}
toast.addEventListener("click", () => { toast.hidden = true; });

// The session: who the page acts as, and the CSRF token every
// state-changing request carries.
let me = { perms: [], csrf: "" };
async function session() {
  try {
    const r = await fetch("/api/session", { credentials: "same-origin" });
    me = await r.json();
  } catch (e) { return; }
  const who = $("who");
  who.textContent = me.logged_in ? `${me.name} (${me.role})` : "Log in";
  who.hidden = !me.accounts && !me.logged_in;
  document.body.dataset.role = me.role || "";
  if (detailSlot) renderDetail();
}

async function post(url, body) {
  const send = () => {
    const opts = { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": me.csrf || "" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts);
  };
  const read = async (r) => {
    let data = {};
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    return { ok: r.ok, status: r.status, data };
  };
  let r = await read(await send());
  if (r.status === 403 && /CSRF/.test(r.data.error || "")) {
    // The station restarted or the session ended: take a fresh token and
    // try once more.
    await session();
    r = await read(await send());
  }
  return r;
}

// act posts an action; a 401 asks for a login and then tries again.
async function act(url, body, what, button) {
  if (button) button.disabled = true;
  try {
    const r = await post(url, body);
    if (r.status === 401) {
      askLogin(`${what} needs you to log in.`, () => act(url, body, what, button));
    } else if (r.status === 403 && me.accounts && !/CSRF/.test(r.data.error || "")) {
      askLogin(r.data.error || `${what} needs another role.`, () => act(url, body, what, button));
    } else if (!r.ok) {
      say(r.data.error || `${what} failed (HTTP ${r.status}).`);
    }
    return r;
  } catch (e) {
    say(`${what}: the station does not answer.`);
    return { ok: false };
  } finally {
    if (button) button.disabled = false;
  }
}

// Barcode scanner: a USB scanner types the label's code fast and ends it
// with Enter. The last code scanned goes with the next Start tapped, for
// units whose chip cannot report a serial number.
let scanned = "";
let keys = "";
let lastKey = 0;
const scanBadge = $("scan");
document.addEventListener("keydown", (ev) => {
  if (loginDialog.open || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const now = performance.now();
  if (now - lastKey > 100) keys = "";
  lastKey = now;
  if (ev.key === "Enter") {
    if (keys.length >= 4) {
      ev.preventDefault();
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
  const body = scanned ? { serial: scanned } : undefined;
  const r = await act(`/api/slots/${n}/start`, body, `Starting slot ${n}`, button);
  if (r.ok && scanned) {
    scanned = "";
    scanBadge.hidden = true;
  }
}

$("startall").addEventListener("click", async (ev) => {
  const r = await act("/api/start-all", undefined, "Start all", ev.currentTarget);
  if (r.ok) say(r.data.done.length ? `Started slots ${r.data.done.join(", ")}.` : "No slot has a unit waiting to start.");
});
$("stopall").addEventListener("click", async (ev) => {
  const r = await act("/api/stop-all", undefined, "Stop all", ev.currentTarget);
  if (!r.ok) return;
  const left = Object.entries(r.data.skipped || {}).map(([n, why]) => `slot ${n} ${why}`);
  say((r.data.done.length ? `Stopped slots ${r.data.done.join(", ")}; their units are switched off.` : "No job was running.") +
    (left.length ? ` Left running: ${left.join("; ")}.` : ""));
});

// The detail of one slot.
const detail = $("detail");
let detailSlot = 0;
let consoleTimer;
function openDetail(n) {
  detailSlot = n;
  acknowledge(n);
  renderDetail();
  if (!detail.open) detail.showModal();
  loadConsole();
  clearInterval(consoleTimer);
  consoleTimer = setInterval(loadConsole, 1000);
  const v = slots.get(n);
  $("d-history").textContent = "";
  if (v && v.serial) {
    const h = visitCache.get(v.serial + "#" + v.attempt);
    if (h) renderVisits(h, v);
    visits(v, true); // the record may have moved on since
  }
}
function closeDetail() {
  detailSlot = 0;
  clearInterval(consoleTimer);
  if (detail.open) detail.close();
}
$("d-close").addEventListener("click", closeDetail);
detail.addEventListener("close", () => {
  if (detail.open) return; // opened again since
  detailSlot = 0;
  clearInterval(consoleTimer);
});

function renderDetail() {
  const v = slots.get(detailSlot);
  if (!v) return;
  const [icon] = looks[v.state] || ["?"];
  $("d-title").textContent = `Slot ${v.slot}` + (v.name && v.name !== `slot ${v.slot}` ? ` · ${v.name}` : "");
  const badge = $("d-state");
  badge.textContent = `${icon} ${longWords[v.state] || v.state}`;
  detail.dataset.state = v.state;
  $("d-step").textContent = v.step || "–";
  const pct = pctOf(v);
  $("d-bar").querySelector(".fill").style.width = pct + "%";
  $("d-bar").querySelector(".pct").textContent = pct + "%";
  $("d-left").textContent = timeLeft(v);
  $("d-serial").textContent = v.serial || "–";
  $("d-recipe").textContent = v.recipe || "–";
  $("d-by").textContent = v.started_by || "–";
  let reason = "";
  if (v.state === "failed" || v.state === "interrupted" || v.state === "quarantined") {
    reason = v.reason || "";
    if (v.class && !reason.includes(v.class)) reason = v.class + (reason ? ": " + reason : "");
    if (v.fault === "station") reason += " (the station's fault, not the unit's)";
  }
  $("d-reason").textContent = reason ? "Why: " + reason : "";
  $("d-hint").textContent = v.hint ? "What to do: " + v.hint : "";
  $("d-why").hidden = !reason && !v.hint;
  $("d-start").hidden = !v.start;
  $("d-retry").hidden = !v.retry;
  $("d-cancel").hidden = !v.cancel;
  $("d-release").hidden = !v.release;
  $("d-historylink").href = "/history" + (v.serial ? "?q=" + encodeURIComponent(v.serial) : "");
}
$("d-start").addEventListener("click", (ev) => startSlot(detailSlot, ev.currentTarget));
$("d-retry").addEventListener("click", (ev) => act(`/api/slots/${detailSlot}/retry`, undefined, `Retrying slot ${detailSlot}`, ev.currentTarget));
$("d-cancel").addEventListener("click", (ev) => act(`/api/slots/${detailSlot}/cancel`, undefined, `Cancelling slot ${detailSlot}`, ev.currentTarget));
$("d-release").addEventListener("click", (ev) => act(`/api/slots/${detailSlot}/release`, undefined, `Releasing slot ${detailSlot}`, ev.currentTarget));

async function loadConsole() {
  const n = detailSlot;
  if (!n) return;
  try {
    const r = await fetch(`/api/slots/${n}/console`, { credentials: "same-origin" });
    if (!r.ok || n !== detailSlot) return;
    const c = await r.json();
    const pre = $("d-console");
    const text = c.lines.length ? c.lines.join("\n") : "(the unit has printed nothing yet)";
    if (pre.textContent !== text) {
      pre.textContent = text;
      pre.scrollTop = pre.scrollHeight;
    }
  } catch (e) { /* offline */ }
}

function renderVisits(h, v) {
  if (h.serial === v.serial) {
    $("d-model").textContent = [h.model, h.chip, h.revision && "rev " + h.revision].filter(Boolean).join(" · ") || "–";
  }
  const ol = $("d-history");
  ol.textContent = "";
  if (!h.attempts.length) {
    el("li", "", ol).textContent = "First time on this bench.";
    return;
  }
  for (const a of h.attempts) {
    const li = el("li", "visit " + a.outcome, ol);
    const when = new Date(a.started).toLocaleString();
    li.textContent = `#${a.id} ${when} · slot ${a.slot} · ${a.outcome}` + (a.class ? ` (${a.class})` : "") + (a.id === v.attempt ? " · this attempt" : "");
  }
}

// Logins: a dialog, then the action that asked for it.
const loginDialog = $("login");
const loginErr = $("loginerr");
let afterLogin = null;
function askLogin(why, then) {
  $("loginwhy").textContent = why;
  loginErr.textContent = "";
  afterLogin = then;
  loginDialog.showModal();
  $("loginname").focus();
}
$("logincancel").addEventListener("click", () => { afterLogin = null; loginDialog.close(); });
$("loginform").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("loginname").value;
  const pw = $("loginpassword");
  const r = await post("/api/login", { name, password: pw.value });
  pw.value = "";
  if (!r.ok) {
    loginErr.textContent = r.data.error || `Login failed (HTTP ${r.status}).`;
    return;
  }
  loginDialog.close();
  await session();
  const then = afterLogin;
  afterLogin = null;
  if (then) then();
});

const account = $("account");
$("who").addEventListener("click", () => {
  if (!me.logged_in) { askLogin("", null); return; }
  $("acct-title").textContent = `${me.name} (${me.role})`;
  $("acct-oplogin-row").hidden = !me.perms.includes("settings");
  $("acct-oplogin").checked = me.operator_login;
  $("acct-err").textContent = "";
  account.showModal();
});
$("acct-close").addEventListener("click", () => account.close());
$("logout").addEventListener("click", async () => {
  await post("/api/logout");
  account.close();
  session();
});
$("acct-oplogin").addEventListener("change", async (ev) => {
  const r = await post("/api/settings", { operator_login: ev.currentTarget.checked });
  if (!r.ok) $("acct-err").textContent = r.data.error || `Not saved (HTTP ${r.status}).`;
  session();
});

// The websocket, reconnecting with a growing pause while the station is
// away; each (re)connection starts with a snapshot of every slot.
let wait = 500;
function connect() {
  const u = new URL("/ws", location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(u);
  ws.onopen = () => {
    wait = 500;
    conn.textContent = "live";
    conn.className = "conn online";
    session();
    summary();
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "snapshot") snapshot(m.slots);
    else m.slots.forEach(show);
  };
  ws.onclose = () => {
    conn.textContent = "offline: reconnecting…";
    conn.className = "conn offline";
    setTimeout(connect, wait);
    wait = Math.min(wait * 2, 5000);
  };
}
if (kiosk) document.addEventListener("contextmenu", (ev) => ev.preventDefault());
session();
connect();
