// Per-system pictures for the node panel, drawn from the nodes' `status`
// (what each system chooses to show): the datasets tree as it grows, a
// consistency replica's versions and their visibility, a Lamport clock and
// its queue. Plain SVG and HTML strings; "" when the system has none.
"use strict";

function picture(system, states, i) {
  const s = states[i];
  if (!s || typeof s !== "object") return "";
  if (Array.isArray(s.kids) && "height" in s) return datasetsTree(states, i);
  if (Array.isArray(s.objects)) return versions(s.objects);
  if (system === "clocks" && "clock" in s) return clockPicture(s);
  return "";
}

// Every data node's parent and kids, laid out top-down: leaves side by
// side, each parent over its kids. The selected node is ringed.
function datasetsTree(states, selected) {
  const data = new Map();
  states.forEach((s, i) => { if (s && Array.isArray(s.kids) && "height" in s) data.set(i, s); });
  const roots = [...data.keys()].filter(i => { const p = data.get(i).parent; return p === null || p === undefined || !data.has(p); });
  const pos = new Map(); let leaves = 0, depth = 0;
  const place = (i, d, seen) => {
    if (seen.has(i)) return 0; seen.add(i);
    depth = Math.max(depth, d);
    const kids = data.get(i).kids.filter(k => data.has(k));
    let x;
    if (!kids.length) x = leaves++;
    else { const xs = kids.map(k => place(k, d + 1, seen)); x = (Math.min(...xs) + Math.max(...xs)) / 2; }
    pos.set(i, { x, d });
    return x;
  };
  const seen = new Set();
  roots.forEach(r => place(r, 0, seen));
  if (!pos.size) return "";
  const W = 34, H = 44, w = Math.max(leaves, 1) * W, h = (depth + 1) * H;
  let svg = `<svg id="node-picture" class="tree" viewBox="${-W / 2} -16 ${w} ${h}" width="100%" style="max-height:${Math.min(h + 10, 320)}px">`;
  for (const [i, p] of pos) for (const k of data.get(i).kids) {
    const q = pos.get(k); if (q) svg += `<line x1="${p.x * W}" y1="${p.d * H}" x2="${q.x * W}" y2="${q.d * H}"/>`;
  }
  for (const [i, p] of pos) {
    const s = data.get(i);
    svg += `<g class="tnode${i === selected ? " sel" : ""}${s.changing ? " changing" : ""}" data-node="${i}">` +
      `<circle cx="${p.x * W}" cy="${p.d * H}" r="11"/><text x="${p.x * W}" y="${p.d * H + 4}">${i}</text>` +
      `<title>node ${i}: height ${s.height}, ${s.kids.length} kids, total ${s.total}</title></g>`;
  }
  return `<h3>the tree (${pos.size} data nodes, ${leaves} leaves)</h3>` + svg + "</svg>";
}

// One row per object: the newest version held and the one reads see.
function versions(objs) {
  if (!objs.length) return "";
  const rows = objs.map(o => {
    const hidden = o.held !== o.visible;
    return `<tr class="${hidden ? "hidden-version" : ""}"><td>object ${o.object}</td><td>${o.held ?? "—"}</td>` +
      `<td>${o.visible ?? "—"}${hidden ? " (not yet visible: " + (o.held ?? "—") + ")" : ""}</td></tr>`;
  }).join("");
  return `<h3>versions held</h3><table id="node-picture" class="versions"><tr><th></th><th>held</th><th>visible</th></tr>${rows}</table>`;
}

// The Lamport clock and the queue of events waiting for it.
function clockPicture(s) {
  const n = s.queue_now || 0, max = Math.max(s.max_queue || 0, n, 1);
  const boxes = Array.from({ length: Math.min(n, 40) }, () => "<i></i>").join("");
  return `<h3>clock and queue</h3><div id="node-picture" class="clockpic"><div class="lamport">${s.clock}</div>` +
    `<div class="queue" title="queued now / most ever">${boxes}${n > 40 ? "…" : ""} <span>${n} queued (max ${max})</span></div></div>`;
}
