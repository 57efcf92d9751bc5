// swimring dashboard: renders the state the node streams on /events (dashboard.go).
// Plain JavaScript, no library, nothing loaded from anywhere but this node.
"use strict";

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d4a6c8", "#8cd17d", "#f1ce63", "#a0cbe8", "#ffbe7d"];
const SVGNS = "http://www.w3.org/2000/svg";

const colours = new Map(); // member id → colour, stable for the life of the page
let positions = null;      // partition → place on the circle in turns (from a full state)
let order = null;          // partitions sorted by position
const history = new Map(); // member id → [[t, served/s, forwarded/s, p50, p95, p99], ...]
let last = null;           // the newest state
let updates = 0;

// natural compares "node-2" < "node-10".
const collator = new Intl.Collator(undefined, { numeric: true });
const natural = (a, b) => collator.compare(a, b);

function colour(id) {
  if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
  return colours.get(id);
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function $(id) { return document.getElementById(id); }

// ---- formatting ----

function fmtRate(v) {
  if (v === null || v === undefined) return "—";
  return v < 10 ? v.toFixed(1) : Math.round(v).toString();
}

function fmtMs(v) {
  if (v === null || v === undefined) return "—";
  if (v < 1) return v.toFixed(2) + " ms";
  if (v < 10) return v.toFixed(1) + " ms";
  if (v < 1000) return Math.round(v) + " ms";
  return (v / 1000).toFixed(2) + " s";
}

function fmtUptime(s) {
  if (!s) return "—";
  s = Math.floor(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
}

// ---- ring ----

// point returns the SVG coordinates of turn t at radius r (turn 0 at the top, clockwise).
function point(r, t) {
  const a = t * 2 * Math.PI - Math.PI / 2;
  return [(r * Math.cos(a)).toFixed(2), (r * Math.sin(a)).toFixed(2)];
}

// arc is the path of the band between radii r0 < r1 from turn t0 to t1 (t1 > t0).
function arc(r0, r1, t0, t1) {
  if (t1 - t0 >= 0.999) { // a whole circle: two halves
    return arc(r0, r1, t0, t0 + 0.5) + " " + arc(r0, r1, t0 + 0.5, t0 + 0.9999);
  }
  const large = t1 - t0 > 0.5 ? 1 : 0;
  const [x0, y0] = point(r1, t0), [x1, y1] = point(r1, t1);
  const [x2, y2] = point(r0, t1), [x3, y3] = point(r0, t0);
  return `M${x0} ${y0}A${r1} ${r1} 0 ${large} 1 ${x1} ${y1}L${x2} ${y2}A${r0} ${r0} 0 ${large} 0 ${x3} ${y3}Z`;
}

// runs groups the partitions, in circle order, into arcs of one owner (and one
// moving status): [{owner, t0, t1, moving, from}].
function runs(ring, moving, pending) {
  pending = pending || new Map();
  const out = [];
  if (!order || !ring.owners || ring.owners.length !== order.length || order.length === 0) return out;
  const n = order.length;
  // Start at a partition whose predecessor has another owner, so no run wraps.
  let start = 0;
  for (let i = 0; i < n; i++) {
    const p = order[i], q = order[(i + n - 1) % n];
    if (ring.owners[p] !== ring.owners[q] || moving.has(p) !== moving.has(q) || pending.has(p) !== pending.has(q)) { start = i; break; }
  }
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    const p = order[i];
    const t0 = positions[p];
    let t1 = positions[order[(i + 1) % n]];
    if (t1 <= t0) t1 += 1;
    const owner = ring.owners[p] >= 0 ? ring.members[ring.owners[p]] : null;
    const mv = moving.get(p), pend = pending.has(p);
    const cur = out[out.length - 1];
    // Arcs are contiguous by construction (each ends where the next begins).
    if (cur && cur.owner === owner && !mv && !cur.moving && pend === cur.pending) {
      cur.t1 += t1 - t0;
    } else {
      out.push({ owner, t0, t1, moving: !!mv, pending: pend, from: mv ? mv.from : null, p });
    }
  }
  return out;
}

function ownedCounts(ring) {
  const c = new Map();
  for (const i of ring.owners || []) if (i >= 0) c.set(ring.members[i], (c.get(ring.members[i]) || 0) + 1);
  return c;
}

function drawRing(svg, ring, moving, opts, pending) {
  const R0 = opts.r0, R1 = opts.r1;
  let s = "";
  for (const r of runs(ring, moving, pending)) {
    const fill = r.owner ? colour(r.owner) : "#444";
    s += `<path class="arc" data-owner="${esc(r.owner || "")}" d="${arc(R0, R1, r.t0, r.t1)}" fill="${fill}"/>`;
    if (r.moving && opts.detail) {
      // Moving: the previous owner's colour inside, a pulsing mark outside.
      s += `<path class="prev" d="${arc(R0 - 14, R0 - 3, r.t0, r.t1)}" fill="${r.from ? colour(r.from) : "#444"}"/>`;
      s += `<path class="moving" data-p="${r.p}" d="${arc(R1 + 2, R1 + 12, r.t0, Math.max(r.t1, r.t0 + 0.004))}"/>`;
    }
    if (r.pending && opts.detail) {
      // Hand-off pending: its new owner holds the calls until the data is in.
      s += `<path class="pending" data-p="${r.p}" d="${arc(R1 + 2, R1 + 12, r.t0, Math.max(r.t1, r.t0 + 0.004))}"/>`;
    }
  }
  if (opts.detail && last && last.vnodes) {
    for (const [id, pts] of Object.entries(last.vnodes)) {
      for (const t of pts) {
        const [x0, y0] = point(R1 + 14, t), [x1, y1] = point(R1 + 22, t);
        s += `<line class="vnode" x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}" stroke="${colour(id)}"/>`;
      }
    }
  }
  if (opts.label) s += opts.label;
  svg.innerHTML = s;
}

function renderRing(st) {
  const svg = $("ring");
  const moving = new Map(st.moving.map(m => [m.p, m]));
  const pending = new Map((st.pending || []).map(m => [m.p, m]));
  const ring = st.ring;
  const label = `<text class="big" y="-8">${esc(ring.checksum)}</text>` +
    `<text class="small" y="12">ring checksum · version ${ring.version}</text>` +
    `<text class="small" y="28">${ring.members.length} members · ${st.partition_count} partitions</text>` +
    (st.moving.length ? `<text class="small" y="46">${st.moving.length} moved in the last 5 s</text>` : "") +
    (pending.size ? `<text class="small pend" y="62">${pending.size} hand-offs pending</text>` : "");
  drawRing(svg, ring, moving, { r0: 120, r1: 168, detail: true, label }, pending);
  svg.dataset.checksum = ring.checksum;
  svg.dataset.members = ring.members.length;
  svg.dataset.moving = st.moving.length;
  svg.dataset.pending = pending.size;
  $("ringinfo").textContent = `as ${st.self} sees it`;

  const counts = ownedCounts(ring);
  $("legend").innerHTML = ring.members.slice().sort(natural).map(id =>
    `<span data-id="${esc(id)}"><i class="sw" style="background:${colour(id)}"></i>${esc(id)} <small>${counts.get(id) || 0}</small></span>`).join("");

  // Rings other nodes have, when they differ from this one: a split at a glance.
  const others = st.rings.filter(r => r.checksum !== ring.checksum);
  $("otherrings").innerHTML = others.map((r, i) =>
    `<figure><svg id="other${i}" viewBox="-210 -210 420 420"></svg><figcaption>ring of ${esc(r.nodes.join(", "))}<br><code>${esc(r.checksum)}</code></figcaption></figure>`).join("");
  others.forEach((r, i) => drawRing($("other" + i), r, new Map(), { r0: 110, r1: 190, detail: false,
    label: `<text class="big" y="8">${r.members.length} members</text>` }));
}

// ---- checksums and members ----

// groups maps each checksum to its group index, the largest group first.
function checksumGroups(members) {
  const count = new Map();
  for (const m of members) if (m.checksum) count.set(m.checksum, (count.get(m.checksum) || 0) + 1);
  const sorted = [...count.keys()].sort((a, b) => (count.get(b) - count.get(a)) || a.localeCompare(b));
  return new Map(sorted.map((c, i) => [c, i]));
}

const gclass = i => (i === undefined ? "gx" : "g" + Math.min(i, 4));

function renderChecksums(st, groups) {
  const cols = st.members.filter(m => m.state !== "left" || m.checksum);
  $("checksums").innerHTML = cols.map(m => {
    const g = groups.get(m.checksum);
    const body = m.checksum
      ? `<code>${esc(m.checksum)}</code><small>ring v${m.ring_version}</small>`
      : `<code>—</code><small>${esc(m.state === "alive" || m.state === "suspect" ? "no answer" : m.state)}</small>`;
    return `<div class="col ${gclass(g)}" data-id="${esc(m.id)}" data-group="${g === undefined ? "" : g}"><b>${esc(m.id)}</b>${body}</div>`;
  }).join("");

  const live = st.members.filter(m => m.state === "alive" || m.state === "suspect");
  const answered = live.filter(m => m.checksum);
  const v = $("verdict");
  if (groups.size > 1) {
    v.className = "verdict split";
    v.textContent = `split: ${groups.size} different rings`;
  } else if (answered.length < live.length) {
    v.className = "verdict wait";
    v.textContent = `${answered.length} of ${live.length} live members answered`;
  } else {
    v.className = "verdict ok";
    v.textContent = `${answered.length} ${answered.length === 1 ? "ring" : "rings"} agree`;
  }
}

function renderMembers(st, groups) {
  const rows = st.members.map(m => {
    const g = groups.get(m.checksum);
    const sum = m.checksum
      ? `<span class="chip ${gclass(g)}" title="${esc(m.checksum)}"><code>${esc(m.checksum.slice(0, 8))}</code></span>`
      : (m.error ? `<span title="${esc(m.error)}">no answer</span>` : "—");
    const inflight = m.reachable ? m.in_flight : "—";
    return `<tr data-id="${esc(m.id)}" data-state="${esc(m.state)}" class="${m.self ? "self" : ""}">` +
      `<td><i class="sw" style="background:${colour(m.id)}"></i><b>${esc(m.id)}</b>${m.self ? " <small>(this node)</small>" : `<small>${esc(m.name)}</small>`}</td>` +
      `<td><span class="state ${esc(m.state)}">${esc(m.state)}</span></td>` +
      `<td class="mono">${esc(m.grpc_addr)}<small>${esc(m.gossip_addr)}</small></td>` +
      `<td class="num">${m.in_ring ? m.partitions : "—"}${m.handoff_pending ? `<small class="pend">${m.handoff_pending} pending</small>` : ""}</td>` +
      `<td class="num">${fmtRate(m.local_per_s)}</td><td class="num">${fmtRate(m.forwarded_per_s)}</td>` +
      `<td class="num">${fmtMs(m.p50_ms)}</td><td class="num">${fmtMs(m.p95_ms)}</td><td class="num">${fmtMs(m.p99_ms)}</td>` +
      `<td class="num">${inflight}</td><td>${sum}</td><td class="num">${fmtUptime(m.uptime_s)}</td></tr>`;
  });
  $("members").tBodies[0].innerHTML = rows.join("");
  const by = {};
  for (const m of st.members) by[m.state] = (by[m.state] || 0) + 1;
  $("memberinfo").textContent = Object.entries(by).map(([k, v]) => `${v} ${k}`).join(" · ");
}

// ---- charts ----

function mergeHistory(st) {
  for (const [id, pts] of Object.entries(st.history)) {
    let h = history.get(id);
    if (st.full || !h) {
      h = pts.slice();
    } else {
      const lastT = h.length ? h[h.length - 1][0] : -Infinity;
      for (const p of pts) if (p[0] > lastT) h.push(p);
    }
    const oldest = st.time_ms - st.history_s * 1000;
    while (h.length && h[0][0] < oldest) h.shift();
    history.set(id, h);
  }
  for (const id of [...history.keys()]) if (!(id in st.history)) history.delete(id);
}

// polyline draws column k of pts; null values break the line.
function lines(pts, k, x, y, stroke, dash, opacity) {
  let s = "", seg = [];
  const flush = () => {
    if (seg.length > 1) s += `<polyline points="${seg.join(" ")}" stroke="${stroke}"${dash ? ' stroke-dasharray="3 2"' : ""} opacity="${opacity}"/>`;
    seg = [];
  };
  for (const p of pts) {
    if (p[k] === null || p[k] === undefined) { flush(); continue; }
    seg.push(x(p[0]).toFixed(1) + "," + y(p[k]).toFixed(1));
  }
  flush();
  return s;
}

function chart(pts, cols, now, span, fmt) {
  const W = 300, H = 64, top = 4;
  let maxV = 0;
  for (const p of pts) for (const c of cols) if (p[c.k] !== null && p[c.k] > maxV) maxV = p[c.k];
  const ymax = maxV > 0 ? maxV * 1.15 : 1;
  const x = t => ((t - (now - span)) / span) * W;
  const y = v => H - 2 - (v / ymax) * (H - 2 - top);
  let s = `<line class="axis" x1="0" y1="${H - 1}" x2="${W}" y2="${H - 1}"/>`;
  for (const c of cols) s += lines(pts, c.k, x, y, c.stroke, c.dash, c.opacity);
  s += `<text x="2" y="10">${maxV > 0 ? esc(fmt(maxV)) : "no calls"}</text>`;
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${s}</svg>`;
}

function renderCharts(st) {
  // The x axis covers the history there is, from one minute up to all that is kept.
  let oldest = st.time_ms;
  for (const h of history.values()) if (h.length && h[0][0] < oldest) oldest = h[0][0];
  const span = Math.min(st.history_s * 1000, Math.max(60000, st.time_ms - oldest)), now = st.time_ms;
  const out = [];
  for (const m of st.members) {
    const pts = history.get(m.id) || [];
    const c = colour(m.id);
    const tput = chart(pts, [{ k: 1, stroke: c, opacity: 1 }, { k: 2, stroke: c, dash: true, opacity: .7 }], now, span, v => fmtRate(v) + "/s");
    const lat = chart(pts, [{ k: 3, stroke: c, opacity: .45 }, { k: 4, stroke: c, opacity: .7 }, { k: 5, stroke: c, opacity: 1 }], now, span, fmtMs);
    out.push(`<div class="chart" data-id="${esc(m.id)}"><h3><i class="sw" style="background:${c}"></i>${esc(m.id)}<small>${esc(m.state)}</small></h3>` +
      `<div class="keys"><i>calls/s: served ━ forwarded ╍</i></div>${tput}` +
      `<div class="keys"><i>latency: p50 · p95 · p99 (faint → solid)</i></div>${lat}</div>`);
  }
  $("charts").innerHTML = out.join("");
  const from = st.members.find(m => m.latency_from);
  $("histinfo").textContent = `last ${span >= 120000 ? Math.round(span / 60000) + " minutes" : Math.round(span / 1000) + " s"} (up to ${Math.round(st.history_s / 60)} minutes) · percentiles over ${st.window_s} s` +
    (from && from.latency_from !== "swimring_call_duration_seconds" ? " · latency of forwarded calls only (" + from.latency_from + ")" : "");
}

// ---- wiring ----

function render(st) {
  if (st.positions && st.positions.length) {
    positions = st.positions;
    order = positions.map((_, p) => p).sort((a, b) => positions[a] - positions[b]);
  }
  for (const m of st.members.map(m => m.id).sort(natural)) colour(m);
  last = st;
  mergeHistory(st);
  const groups = checksumGroups(st.members);
  $("view").textContent = `cluster as seen from ${st.self} · ${new Date(st.time_ms).toLocaleTimeString()}`;
  renderRing(st);
  renderChecksums(st, groups);
  renderMembers(st, groups);
  renderCharts(st);
  updates++;
  document.body.dataset.updates = updates;
}

function setConn(ok, text) {
  const c = $("conn");
  c.className = "conn " + (ok ? "live" : "down");
  c.textContent = text;
  const b = $("banner");
  if (ok) { b.hidden = true; return; }
  const others = last ? last.members.filter(m => !m.self && m.http_addr && (m.state === "alive" || m.state === "suspect")) : [];
  b.innerHTML = "Lost the connection to this node (killed, paused or left?); retrying." +
    (others.length ? " Other nodes' dashboards: " + others.map(m => `<a href="http://${esc(m.http_addr)}/">${esc(m.id)}</a>`).join("") : "");
  b.hidden = false;
}

function connect() {
  const es = new EventSource("events");
  es.addEventListener("open", () => setConn(true, "live"));
  es.addEventListener("state", ev => {
    try {
      render(JSON.parse(ev.data));
      setConn(true, "live");
    } catch (e) {
      console.error(e);
    }
  });
  es.addEventListener("failure", ev => setConn(false, "node error: " + JSON.parse(ev.data)));
  es.addEventListener("error", () => setConn(false, "disconnected"));
}

connect();
