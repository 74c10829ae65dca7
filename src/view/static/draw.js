// Drawing: machines on a ring (or grouped by location), links, and
// messages in flight as dots between their ends. No framework: plain SVG.
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f",
  "#e5c494", "#b3b3b3", "#1b9e77", "#d95f02", "#7570b3", "#e7298a"];

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

function kindColor(meta, kind) {
  const i = meta.kinds.indexOf(kind);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

// Positions of the machines: one ring, or a ring of locations each with
// its own small ring of machines.
function layout(machines) {
  const locs = [];
  machines.forEach(m => { if (m.location && !locs.includes(m.location)) locs.push(m.location); });
  const pos = [], groups = [];
  const around = (i, n, r, cx, cy) => {
    const a = -Math.PI / 2 + 2 * Math.PI * i / Math.max(n, 1);
    return { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) };
  };
  if (locs.length < 2 || locs.length === machines.length) {
    machines.forEach((m, i) => pos.push(around(i, machines.length, machines.length < 3 ? 150 : 250, 0, 0)));
    return { pos, groups };
  }
  locs.forEach((l, g) => {
    const c = around(g, locs.length, 220, 0, 0);
    const members = machines.map((m, i) => [m, i]).filter(([m]) => m.location === l);
    groups.push({ name: l, x: c.x, y: c.y, r: members.length > 1 ? 95 : 50 });
    members.forEach(([, i], k) => pos[i] = members.length === 1 ? c : around(k, members.length, 60, c.x, c.y));
  });
  machines.forEach((m, i) => { if (!pos[i]) pos[i] = around(i, machines.length, 300, 0, 0); });
  return { pos, groups };
}

// A short line of a node's state under its circle.
function stateLine(s) {
  if (s === null || s === undefined) return "";
  if (typeof s !== "object") return String(s);
  if ("view" in s) return `v${s.view} c${s.commit}` + (s.status && s.status !== "normal" ? ` ${s.status}` : "");
  return Object.entries(s).slice(0, 2).map(([k, v]) => `${k} ${typeof v === "object" ? "…" : v}`).join(" ");
}

// How far a skewed clock is from true time at `t` seconds.
function skewAt(c, t) {
  const ms = (c.offset_ms || 0) + (c.drift_ppm || 0) * 1e-6 * t * 1000;
  return `${ms >= 0 ? "+" : ""}${ms.toFixed(ms > -10 && ms < 10 ? 2 : 1)} ms`;
}

class Stage {
  constructor(svg, meta, onMachine, onMessage) {
    this.svg = svg; this.meta = meta; this.onMessage = onMessage;
    svg.innerHTML = "";
    const { pos, groups } = layout(meta.machines);
    this.pos = pos;
    for (const g of groups) {
      el("circle", { cx: g.x, cy: g.y, r: g.r, fill: "none", stroke: "#eceff1", "stroke-width": 2 }, svg);
      el("text", { x: g.x, y: g.y - g.r - 8, class: "group-label" }, svg).textContent = g.name;
    }
    this.links = el("g", {}, svg);
    if (pos.length <= 12) {
      for (let a = 0; a < pos.length; a++) for (let b = a + 1; b < pos.length; b++)
        el("line", { x1: pos[a].x, y1: pos[a].y, x2: pos[b].x, y2: pos[b].y, class: "link" }, this.links);
    }
    this.cuts = el("g", {}, svg);
    this.nodes = meta.machines.map((m, i) => {
      const g = el("g", { class: "machine", "data-node": i, transform: `translate(${pos[i].x},${pos[i].y})` }, svg);
      el("circle", { r: 28, class: "body" }, g);
      el("text", { y: 4 }, g).textContent = m.label || m.name;
      el("text", { y: 44, class: "state" }, g);
      // A skewed clock: a dotted purple ring and its offset from true time.
      if (m.clock) {
        g.classList.add("skewed");
        el("circle", { r: 34, class: "skew-ring" }, g);
        el("text", { y: -38, class: "skew" }, g);
      }
      g.addEventListener("click", () => onMachine(i));
      return g;
    });
    this.msgs = el("g", {}, svg);
    this.dots = new Map();
  }

  machineOf(node) {
    const m = this.meta.node_machine[node];
    return m === undefined ? node : m;
  }

  update(frame, selected) {
    const st = frame.machines;
    this.nodes.forEach((g, i) => {
      const down = st.up && st.up[i] === false;
      const s = frame.states[i];
      g.classList.toggle("down", down);
      g.classList.toggle("isolated", !!(st.isolated && st.isolated[i]));
      g.classList.toggle("master", !down && !!(s && s.master));
      g.classList.toggle("selected", selected === i);
      let cross = g.querySelector("text.cross");
      if (down && !cross) { cross = el("text", { y: 10, class: "cross" }, g); cross.textContent = "✕"; }
      if (!down && cross) cross.remove();
      g.querySelector("text.state").textContent = down ? "crashed" : stateLine(s);
      const m = this.meta.machines[i];
      if (m.clock) g.querySelector("text.skew").textContent = "clock " + skewAt(m.clock, frame.t);
    });
    this.cuts.innerHTML = "";
    for (const [a, b] of st.cut || []) {
      const p = this.pos[a], q = this.pos[b];
      if (p && q) el("line", { x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: "cut" }, this.cuts);
    }
    this.inflight = frame.inflight;
  }

  // Moves each message to where it is at `now`.
  animate(now) {
    const seen = new Set();
    for (const m of this.inflight || []) {
      const a = this.pos[this.machineOf(m.from)], b = this.pos[this.machineOf(m.to)];
      if (!a || !b) continue;
      const end = m.pair_t === undefined ? m.t + 0.05 : m.pair_t;
      if (now < m.t || now > end) continue;
      let f = end > m.t ? (now - m.t) / (end - m.t) : 1;
      f = Math.min(Math.max(f, 0), 1);
      let dot = this.dots.get(m.i);
      if (!dot) {
        dot = el("circle", { r: 7, class: "msg", "data-i": m.i, "data-kind": m.kind, fill: kindColor(this.meta, m.kind) }, this.msgs);
        if (m.pair_ev === "drop") dot.classList.add("dropped");
        dot.addEventListener("click", ev => { ev.stopPropagation(); this.onMessage(m); });
        this.dots.set(m.i, dot);
      }
      // Messages to oneself curl out a little so they stay visible.
      const off = a === b ? 30 * Math.sin(Math.PI * f) : 0;
      dot.setAttribute("cx", a.x + (b.x - a.x) * f + off);
      dot.setAttribute("cy", a.y + (b.y - a.y) * f - off);
      seen.add(m.i);
    }
    for (const [i, dot] of this.dots) if (!seen.has(i)) { dot.remove(); this.dots.delete(i); }
  }
}

function legend(box, meta) {
  box.innerHTML = meta.kinds.filter(k => k !== "?")
    .map(k => `<span><i style="background:${kindColor(meta, k)}"></i>${k}</span>`).join("");
}
