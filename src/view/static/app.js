// The page: loads a run's outline, asks the server for the moment shown
// (one frame at a time, never the whole trace), plays, seeks, inspects,
// filters logs and asks for "what if" branches.
"use strict";
const $ = id => document.getElementById(id);
const view = { run: 0, meta: null, stage: null, now: 0, playing: false, selected: null,
  frame: null, fetching: false, dirty: false, lastWall: null, panel: null };

async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

const fmt = t => t.toFixed(6) + " s";
const esc = s => String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const speed = () => Math.pow(10, -parseFloat($("speed").value)); // simulated s per real s

async function loadRun(id) {
  view.run = id;
  const meta = await api(`/api/meta?run=${id}`);
  view.meta = meta;
  $("title").textContent = meta.system ? `${meta.system}, seed ${meta.seed}` : meta.label;
  view.stage = new Stage($("ring"), meta, selectMachine, showMessage);
  legend($("legend"), meta);
  $("time").max = meta.end || 1;
  const opts = meta.machines.map((m, i) => `<option value="${i}">${esc(m.name)}</option>`).join("");
  $("fault-machine").innerHTML = opts;
  $("fault-target").innerHTML = opts;
  $("log-machine").innerHTML = `<option value="">all machines</option>` +
    [...new Set(meta.machines.map(m => m.name).concat(["controller"]))].map(n => `<option value="${esc(n)}">${esc(n)}</option>`).join("");
  $("whatif").style.display = meta.can_fork ? "" : "none";
  showVerdict(meta.verdict);
  await refreshRuns();
  seek(Math.min(view.now, meta.end));
  loadLogs();
  if (!meta.states_ready && meta.can_fork) pollStates(id);
}

// The node states come from a re-run; ask again until they are there.
async function pollStates(id) {
  for (let k = 0; k < 120 && view.run === id; k++) {
    await new Promise(r => setTimeout(r, 500));
    const m = await api(`/api/meta?run=${id}`);
    $("status").textContent = m.states_note;
    if (m.states_ready) { view.meta.states_ready = true; showVerdict(m.verdict); requestFrame(); return; }
  }
}

function showVerdict(v) {
  $("verdict").innerHTML = !v ? "" : v.linearizable
    ? `<span class="ok">linearizable (${v.operations} ops)</span>`
    : `<span class="bad">NOT linearizable (key ${esc(v.violation_key)})</span>`;
}

async function refreshRuns() {
  const runs = await api("/api/runs");
  $("runs").innerHTML = runs.map(r => {
    const v = r.verdict ? (r.verdict.linearizable ? " ✓ linearizable" : " ✗ not linearizable") : "";
    return `<option value="${r.id}" ${r.id === view.run ? "selected" : ""}>${r.id}: ${esc(r.label)}${v}</option>`;
  }).join("");
}

function seek(t) {
  view.now = Math.max(0, Math.min(t, view.meta.end));
  $("time").value = view.now;
  $("time-label").textContent = fmt(view.now);
  requestFrame();
}

// One frame request at a time; a newer moment waits for the one in flight.
async function requestFrame() {
  if (view.fetching) { view.dirty = true; return; }
  view.fetching = true;
  try {
    const f = await api(`/api/frame?run=${view.run}&t=${view.now}`);
    view.frame = f;
    view.stage.update(f, view.selected);
    view.stage.animate(view.now);
    $("ring").dataset.inflight = f.inflight.length;
    $("ring").dataset.t = f.t;
    if (!view.playing) $("status").textContent = `${f.inflight.length} messages in flight; event ${f.index} of ${view.meta.events}`;
    if (view.panel) view.panel();
    if ($("log-follow").checked) loadLogs();
  } catch (e) { $("status").textContent = "error: " + e.message; }
  view.fetching = false;
  if (view.dirty) { view.dirty = false; requestFrame(); }
}

function tick(wall) {
  if (view.playing && view.lastWall !== null) {
    const dt = Math.min(wall - view.lastWall, 500) / 1000;
    view.now = Math.min(view.now + dt * speed(), view.meta.end);
    $("time").value = view.now;
    $("time-label").textContent = fmt(view.now);
    if (view.now >= view.meta.end) setPlaying(false);
    requestFrame();
  }
  view.lastWall = wall;
  if (view.stage) view.stage.animate(view.now);
  requestAnimationFrame(tick);
}

function setPlaying(p) {
  view.playing = p;
  $("play").textContent = p ? "⏸" : "▶";
}

async function stepNext() {
  setPlaying(false);
  const n = await api(`/api/next?run=${view.run}&t=${view.now}`);
  if (n.t !== null) {
    seek(n.t);
    $("status").textContent = "next: " + describe(n.event);
  }
}

function describe(e) {
  if (!e) return "";
  if (e.kind !== undefined) return `${e.ev} ${e.kind} ${e.from}→${e.to} at ${fmt(e.t)}`;
  return `${e.ev} ${e.machine !== undefined ? "machine " + e.machine : e.node !== undefined ? "node " + e.node : ""} at ${fmt(e.t)}`;
}

function table(obj) {
  if (obj === null || obj === undefined) return "<p class='hint'>none</p>";
  return "<table>" + Object.entries(obj).map(([k, v]) =>
    `<tr><td>${esc(k)}</td><td>${esc(typeof v === "object" ? JSON.stringify(v) : v)}</td></tr>`).join("") + "</table>";
}

function selectMachine(i) {
  view.selected = i;
  view.panel = async () => {
    const n = await api(`/api/node?run=${view.run}&node=${i}&t=${view.now}`);
    const name = view.meta.machines[i] ? view.meta.machines[i].name : "node " + i;
    $("panel").innerHTML = `<h3 id="node-title">${esc(name)} (node ${i}) ${n.up ? "" : "— crashed"}</h3>
      ${view.meta.states_ready && view.frame ? picture(view.meta.system, view.frame.states, i) : ""}
      <h3>state at ${fmt(n.t)}</h3><div id="node-state">${view.meta.states_ready ? table(n.state) : "<p class='hint'>" + esc(view.meta.states_note) + "</p>"}</div>
      <h3>messages so far</h3><div id="node-counters">${table(n.counters && { sent: n.counters.sent, received: n.counters.received, "dropped to it": n.counters.dropped_to, timers: n.counters.timers })}</div>
      <h3>recent events</h3><div id="node-recent">${n.recent.map(e => `<div>${esc(describe(e))}</div>`).join("") || "<p class='hint'>none</p>"}</div>
      <h3>its log lines</h3><div id="node-logs">${n.logs.map(l => `<div>${fmt(l.t)} ${esc(l.level)} ${esc(l.msg)}</div>`).join("") || "<p class='hint'>none</p>"}</div>`;
  };
  view.panel();
  if (view.frame) view.stage.update(view.frame, i);
}

// A message's panel; the server adds its contents when the trace (or the
// viewer's re-run of it) recorded them.
async function showMessage(m) {
  view.panel = null;
  setPlaying(false);
  try { m = await api(`/api/message?run=${view.run}&i=${m.i}`); } catch (e) { /* keep the frame's */ }
  const fate = m.pair_ev === "drop" ? "dropped" : m.pair_ev === "deliver" ? "delivered" : "not delivered";
  $("panel").innerHTML = `<h3 id="msg-title">message ${esc(m.kind)}</h3>` + table({
    kind: m.kind, from: nodeName(m.from), to: nodeName(m.to), sent: fmt(m.t),
    [fate]: m.pair_t !== undefined ? fmt(m.pair_t) : "—", "trace event": m.i,
  }) + (m.contents !== undefined
    ? `<h3>contents</h3><pre id="msg-contents">${esc(m.contents)}</pre>`
    : `<p class='hint'>${view.meta.can_fork ? "Contents appear once the re-run has sampled the states." : "This trace does not record message contents."}</p>`)
    + (m.pair_reason ? `<p id="msg-drop">dropped: ${esc(m.pair_reason)}</p>` : "")
    + (view.meta.can_fork && m.ev === "send" && m.pair_ev !== "drop"
      ? `<p><button id="drop-btn">drop this message</button> and re-run</p>` : "");
  const b = $("drop-btn");
  if (b) b.onclick = () => fork({ run: view.run, at: m.t, kind: "drop", message: m.i });
}

function nodeName(n) {
  const m = view.meta.machines[view.stage.machineOf(n)];
  return m ? `${m.name} (node ${n})` : `node ${n}`;
}

async function loadLogs() {
  const p = new URLSearchParams({ run: view.run, machine: $("log-machine").value, node: $("log-node").value,
    level: $("log-level").value, q: $("log-q").value, limit: 300 });
  if ($("log-follow").checked) { p.set("to", view.now); p.set("tail", "1"); }
  try {
    const r = await api("/api/logs?" + p);
    $("log-count").textContent = `${r.total} lines`;
    $("logs").tBodies[0].innerHTML = r.lines.map(l =>
      `<tr class="logline ${l.level}${l.t > view.now ? " future" : ""}" data-t="${l.t}" data-machine="${esc(l.machine)}">
       <td>${l.t.toFixed(6)}</td><td>${esc(l.machine)}</td><td>${esc(l.node)}</td><td class="level">${l.level}</td>
       <td class="msg" title="${esc(l.raw)}">${esc(l.msg)}</td></tr>`).join("");
    const box = $("logs-scroll");
    if ($("log-follow").checked) box.scrollTop = box.scrollHeight;
  } catch (e) { $("log-count").textContent = "error: " + e.message; }
}

// A branch with one more fault: the what-if box's, or `body` (a message
// panel's "drop this message").
async function fork(body) {
  if (!body || body instanceof Event) {
    const kind = $("fault-kind").value;
    body = { run: view.run, at: view.now, kind };
    if (["crash", "restart", "isolate"].includes(kind)) body.machine = +$("fault-machine").value;
    if (kind.startsWith("link")) { body.source = +$("fault-machine").value; body.target = +$("fault-target").value; }
  }
  setPlaying(false);
  $("fork-status").textContent = "re-running…";
  try {
    const m = await api("/api/fork", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    $("fork-status").textContent = `branch ${m.id}: ${m.label}`;
    await loadRun(m.id);
    // The dropped message's fate in the new branch.
    if (body.kind === "drop") await showMessage({ i: body.message });
  } catch (e) { $("fork-status").textContent = "failed: " + e.message; }
}

function init() {
  $("play").onclick = () => setPlaying(!view.playing);
  $("step").onclick = stepNext;
  $("time").addEventListener("input", () => { setPlaying(false); seek(parseFloat($("time").value)); });
  $("speed").addEventListener("input", () => {
    $("speed-label").textContent = `1/${Math.round(Math.pow(10, parseFloat($("speed").value)))}×`;
  });
  $("runs").onchange = () => loadRun(+$("runs").value);
  $("fork-btn").onclick = () => fork();
  for (const id of ["log-machine", "log-level", "log-follow"]) $(id).onchange = loadLogs;
  for (const id of ["log-node", "log-q"]) $(id).oninput = loadLogs;
  $("logs").addEventListener("click", ev => {
    const tr = ev.target.closest("tr.logline");
    if (tr) { setPlaying(false); seek(parseFloat(tr.dataset.t)); }
  });
  document.addEventListener("keydown", ev => {
    if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    if (ev.code === "Space") { ev.preventDefault(); setPlaying(!view.playing); }
    if (ev.key === "n") stepNext();
  });
  // `dz view --at T` opens the page at a moment: #t=T.
  const at = /(?:^#|&)t=([0-9.]+)/.exec(location.hash);
  if (at) view.now = parseFloat(at[1]);
  loadRun(0).catch(e => { $("status").textContent = "error: " + e.message; });
  requestAnimationFrame(tick);
}
init();
