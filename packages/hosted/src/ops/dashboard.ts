/**
 * The dashboard page the admin server serves at `/`: one self-contained HTML
 * document (no external assets, so it works offline and under a strict CSP)
 * fed over WebSocket (`/ws`, see admin.ts): plots of the last minutes
 * (calls/s and errors/s per Ebb and per node, p50/p99 latency, calls/s per
 * core, RSS per node; drawn on canvases, one point per metrics sample, from
 * the same numbers `ebbrt top` shows), the node map with per-core rates,
 * calls/s, errors and latency per Ebb, and joins and failures as they happen.
 * Everything is rendered with textContent (no HTML from the feed).
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ebbrt dashboard</title>
<style>
  :root { --bg: #0f1419; --panel: #182028; --line: #2a3540; --text: #d8e0e8; --dim: #8a98a8; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --accent: #58a6ff; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; gap: 1.5em; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .dim { color: var(--dim); }
  #conn { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: var(--line); }
  #conn[data-state="open"] { background: #1f4d2c; color: var(--ok); }
  #conn[data-state="closed"] { background: #4d1f1f; color: var(--bad); }
  main { padding: 16px 20px; display: grid; gap: 20px; }
  h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .05em; color: var(--dim); margin: 0 0 8px; }
  #nodes { display: flex; flex-wrap: wrap; gap: 12px; }
  .node { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--ok); border-radius: 6px; padding: 10px 12px; min-width: 230px; }
  .node[data-state="booting"] { border-left-color: var(--warn); }
  .node[data-state="failed"] { border-left-color: var(--bad); opacity: .75; }
  .node[data-state="left"] { border-left-color: var(--dim); opacity: .6; }
  .node .title { display: flex; justify-content: space-between; gap: 8px; font-weight: 600; }
  .node .state { font-size: 12px; font-weight: 400; }
  .node[data-state="joined"] .state { color: var(--ok); }
  .node[data-state="failed"] .state { color: var(--bad); }
  .node .meta { color: var(--dim); font-size: 12px; }
  .node .reason { color: var(--bad); font-size: 12px; max-width: 320px; }
  .cores { display: flex; gap: 4px; margin-top: 6px; flex-wrap: wrap; }
  .core { font-size: 11px; background: #22303c; border-radius: 4px; padding: 2px 6px; }
  table { border-collapse: collapse; width: 100%; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
  th, td { text-align: right; padding: 5px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2), th:nth-child(3), td:nth-child(3) { text-align: left; }
  th { color: var(--dim); font-weight: 500; font-size: 12px; }
  td.err { color: var(--bad); }
  #events { list-style: none; margin: 0; padding: 0; max-height: 260px; overflow: auto; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; }
  #events li { padding: 4px 10px; border-bottom: 1px solid var(--line); font-size: 13px; }
  #events li time { color: var(--dim); margin-right: 8px; font-variant-numeric: tabular-nums; }
  #events li[data-kind="join"] { color: var(--ok); }
  #events li[data-kind="replace"], #events li[data-kind="suspect"] { color: var(--warn); }
  #events li[data-kind="fail"], #events li[data-kind="reject"] { color: var(--bad); }
  .empty { color: var(--dim); padding: 8px 0; }
  #plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
  .plot { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .plot h3 { font-size: 12px; font-weight: 500; color: var(--dim); margin: 0 0 4px; display: flex; justify-content: space-between; }
  .plot canvas { width: 100%; height: 150px; display: block; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 11px; color: var(--dim); margin-top: 4px; min-height: 14px; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
</style>
</head>
<body>
<header>
  <h1>ebbrt · <span id="cluster">…</span></h1>
  <span class="dim">status <b id="status">…</b></span>
  <span class="dim">frontend <span id="frontend">…</span></span>
  <span class="dim"><span id="joined">0</span> node(s) joined</span>
  <span class="dim">store <span id="store">…</span></span>
  <span id="conn" data-state="connecting">connecting</span>
</header>
<main>
  <section><h2>Last minutes</h2><div id="plots">
    <div class="plot"><h3>calls/s per Ebb <span class="max"></span></h3><canvas data-chart="ebb-calls"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>errors/s per Ebb <span class="max"></span></h3><canvas data-chart="ebb-errors"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>latency per Ebb, p50 — and p99 - - <span class="max"></span></h3><canvas data-chart="ebb-latency"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>calls/s per node (sent + served) <span class="max"></span></h3><canvas data-chart="node-calls"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>latency per node, p50 — and p99 - - <span class="max"></span></h3><canvas data-chart="node-latency"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>calls/s per core (node:core) <span class="max"></span></h3><canvas data-chart="core-calls"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>errors/s per node <span class="max"></span></h3><canvas data-chart="node-errors"></canvas><div class="legend"></div></div>
    <div class="plot"><h3>RSS per node <span class="max"></span></h3><canvas data-chart="node-rss"></canvas><div class="legend"></div></div>
  </div></section>
  <section><h2>Nodes</h2><div id="nodes"><div class="empty">waiting for the feed…</div></div></section>
  <section><h2>Ebbs</h2>
    <table id="ebbs"><thead><tr>
      <th>Ebb</th><th>id</th><th>policy</th><th>owner</th><th>reps (L real · c core proxy · r remote proxy)</th>
      <th>calls/s</th><th>errors/s</th><th>served/s</th><th>p50</th><th>p99</th><th>node/s</th><th>remote/s</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Joins and failures</h2><ul id="events"></ul></section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    for (const child of children) node.append(child);
    return node;
  };
  const rate = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const us = (x) => (x == null ? '–' : x >= 1e6 ? (x / 1e6).toFixed(2) + ' s' : x >= 1000 ? (x / 1000).toFixed(2) + ' ms' : x.toFixed(0) + ' µs');
  const bytes = (b) => (b == null ? '–' : (b / 1048576).toFixed(1) + ' MiB');
  const ago = (ms) => { if (ms == null) return '–'; const s = Math.floor(ms / 1000); return s < 60 ? s + 's' : s < 3600 ? Math.floor(s / 60) + 'm' + (s % 60) + 's' : Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm'; };
  let view = null, top = null;
  const seenEvents = new Set();

  function renderHeader() {
    $('cluster').textContent = view.cluster;
    $('status').textContent = view.status;
    $('frontend').textContent = view.frontend;
    $('store').textContent = view.store;
    $('joined').textContent = String(view.nodes.filter((n) => n.state === 'joined').length);
  }

  function renderNodes() {
    const rates = new Map((top ? top.nodes : []).map((n) => [n.nodeId, n]));
    const box = $('nodes');
    box.replaceChildren();
    const nodes = view.nodes;
    if (nodes.length === 0) box.append(el('div', { class: 'empty' }, 'no nodes'));
    for (const n of nodes) {
      const r = n.state === 'joined' ? rates.get(n.id) : undefined;
      const card = el('div', { class: 'node', 'data-node-id': n.id, 'data-state': n.state, 'data-group': n.group },
        el('div', { class: 'title' }, el('span', {}, n.id ? 'node ' + n.id : n.group + ' (booting)'), el('span', { class: 'state' }, n.state)),
        el('div', { class: 'meta' }, n.group + ' · ' + n.backend + (n.address ? ' · ' + n.address : '')),
        el('div', { class: 'meta' }, n.cores + ' core(s) · up ' + ago(n.uptimeMs) + ' · RSS ' + bytes(n.rssBytes) + (n.pid ? ' · pid ' + n.pid : '')),
      );
      if (n.services && n.services.length) card.append(el('div', { class: 'meta services' }, 'serves ' + n.services.map((s) => s.name + ' at ' + s.address).join(' · ')));
      if (r) {
        card.append(el('div', { class: 'meta' }, 'sent ' + rate(r.callsPerSec) + '/s · served ' + rate(r.servedPerSec) + '/s · p50 ' + us(r.p50Us) + ' · p99 ' + us(r.p99Us)));
        const cores = el('div', { class: 'cores' });
        for (const c of r.cores) cores.append(el('span', { class: 'core', 'data-core': c.core }, 'core ' + c.core + ': ' + rate(c.callsPerSec + c.servedPerSec) + '/s'));
        card.append(cores);
      }
      if (n.reason && n.state !== 'joined') card.append(el('div', { class: 'reason' }, n.reason));
      box.append(card);
    }
  }

  function renderEbbs() {
    const rates = new Map((top ? top.ebbs : []).map((e) => [e.id, e]));
    const body = $('ebbs').tBodies[0];
    $('ebbs').dataset.at = top ? String(top.at) : '';
    body.replaceChildren();
    const ids = new Set([...view.ebbs.map((e) => e.id), ...rates.keys()]);
    if (ids.size === 0) { body.append(el('tr', {}, el('td', { colspan: 12, class: 'empty' }, 'no Ebb touched yet'))); return; }
    for (const id of [...ids].sort((a, b) => a - b)) {
      const e = view.ebbs.find((x) => x.id === id);
      const r = rates.get(id);
      const reps = e ? e.reps.map((x) => x.node + ':' + x.cores).join(' ') : '';
      body.append(el('tr', { 'data-ebb-id': id, 'data-p50-us': r && r.p50Us != null ? r.p50Us : '' },
        el('td', {}, (e || r).name), el('td', {}, (e || r).hex), el('td', {}, (e || r).policy), el('td', {}, e && e.owner != null ? String(e.owner) : '–'),
        el('td', {}, reps),
        el('td', {}, r ? rate(r.callsPerSec) : '–'), el('td', { class: r && r.errorsPerSec > 0 ? 'err' : '' }, r ? rate(r.errorsPerSec) : '–'),
        el('td', {}, r ? rate(r.servedPerSec) : '–'), el('td', {}, r ? us(r.p50Us) : '–'), el('td', {}, r ? us(r.p99Us) : '–'),
        el('td', {}, r ? rate(r.resolved.nodePerSec) : '–'), el('td', {}, r ? rate(r.resolved.remotePerSec) : '–'),
      ));
    }
  }

  function addEvent(e) {
    const key = e.at + e.message;
    if (seenEvents.has(key)) return;
    seenEvents.add(key);
    const list = $('events');
    list.prepend(el('li', { 'data-kind': e.kind, 'data-node-id': e.nodeId == null ? '' : e.nodeId }, el('time', {}, new Date(e.at).toLocaleTimeString()), e.message));
    while (list.children.length > 200) list.lastChild.remove();
  }

  // ---- plots: one point per metrics sample, the last PLOT_SPAN_MS ----
  const PLOT_SPAN_MS = 300000;
  const COLORS = ['#58a6ff', '#3fb950', '#d29922', '#f778ba', '#a371f7', '#39c5cf', '#f85149', '#e3b341', '#8b949e', '#56d364', '#79c0ff', '#ff9bce', '#d2a8ff', '#ffa657', '#7ee787', '#b1bac4'];
  const points = [];
  const colorOf = new Map();
  const color = (key) => { if (!colorOf.has(key)) colorOf.set(key, COLORS[colorOf.size % COLORS.length]); return colorOf.get(key); };
  const mib = (b) => (b == null ? null : b / 1048576);
  const CHARTS = {
    'ebb-calls': { unit: rate, series: (p) => p.ebbs.map((e) => ['ebb ' + e.name, e.calls]) },
    'ebb-errors': { unit: rate, series: (p) => p.ebbs.map((e) => ['ebb ' + e.name, e.errors]) },
    'ebb-latency': { unit: us, series: (p) => p.ebbs.flatMap((e) => [['ebb ' + e.name, e.p50], ['ebb ' + e.name + ' p99', e.p99]]) },
    'node-calls': { unit: rate, series: (p) => p.nodes.map((n) => ['node ' + n.id, n.calls]) },
    'node-latency': { unit: us, series: (p) => p.nodes.flatMap((n) => [['node ' + n.id, n.p50], ['node ' + n.id + ' p99', n.p99]]) },
    'core-calls': { unit: rate, series: (p) => p.nodes.flatMap((n) => n.cores.map((c, i) => [n.id + ':' + i, c])) },
    'node-errors': { unit: rate, series: (p) => p.nodes.map((n) => ['node ' + n.id, n.errors]) },
    'node-rss': { unit: (x) => x.toFixed(0) + ' MiB', series: (p) => p.nodes.map((n) => ['node ' + n.id, mib(n.rss)]) },
  };

  function addPoint(point) {
    if (points.length && points[points.length - 1].at >= point.at) return;
    points.push(point);
    while (points.length && points[0].at < point.at - PLOT_SPAN_MS) points.shift();
  }

  function drawPlots() {
    if (document.hidden) return;
    const now = points.length ? points[points.length - 1].at : Date.now();
    // The x axis spans the data kept, at least a minute (a fresh cluster's first seconds are not a sliver).
    const span = Math.max(60000, Math.min(PLOT_SPAN_MS, points.length ? now - points[0].at : 0));
    for (const canvas of document.querySelectorAll('#plots canvas')) {
      const chart = CHARTS[canvas.dataset.chart];
      const byKey = new Map();
      for (const p of points) for (const [key, value] of chart.series(p)) {
        if (!byKey.has(key)) byKey.set(key, []);
        if (value != null) byKey.get(key).push([p.at, value]);
      }
      let max = 0, nonzero = 0;
      for (const values of byKey.values()) for (const [, v] of values) { if (v > max) max = v; if (v > 0) nonzero++; }
      const top = max > 0 ? max * 1.1 : 1;
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth, height = canvas.clientHeight;
      if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
      if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
      const g = canvas.getContext('2d');
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, width, height);
      g.strokeStyle = '#2a3540'; g.lineWidth = 1;
      for (let i = 0; i <= 4; i++) { const y = Math.round((height - 1) * i / 4) + 0.5; g.beginPath(); g.moveTo(0, y); g.lineTo(width, y); g.stroke(); }
      const x = (at) => width - ((now - at) / span) * width;
      const y = (v) => height - 2 - (v / top) * (height - 4);
      for (const [key, values] of byKey) {
        if (values.length === 0) continue;
        const p99 = key.endsWith(' p99');
        g.strokeStyle = color(p99 ? key.slice(0, -4) : key);
        g.setLineDash(p99 ? [4, 3] : []);
        g.lineWidth = 1.75;
        g.beginPath();
        values.forEach(([at, v], i) => (i ? g.lineTo(x(at), y(v)) : g.moveTo(x(at), y(v))));
        if (values.length === 1) g.lineTo(x(values[0][0]) - 2, y(values[0][1]));
        g.stroke();
      }
      g.setLineDash([]);
      g.fillStyle = '#8a98a8'; g.font = '10px system-ui, sans-serif';
      g.fillText('last ' + Math.round(span / 1000) + ' s', 2, height - 4);
      const legend = canvas.nextElementSibling;
      legend.replaceChildren();
      for (const key of byKey.keys()) if (!key.endsWith(' p99')) legend.append(el('span', {}, el('i', { style: 'background:' + color(key) }), key.replace(/^(ebb|node) /, '')));
      canvas.parentElement.querySelector('.max').textContent = max > 0 ? 'max ' + chart.unit(max) : '';
      canvas.dataset.series = String(byKey.size);
      canvas.dataset.nonzero = String(nonzero);
      canvas.dataset.points = String(points.length);
    }
  }
  window.addEventListener('resize', drawPlots);
  document.addEventListener('visibilitychange', drawPlots);

  function render() {
    if (!view) return;
    renderHeader();
    renderNodes();
    renderEbbs();
  }

  let delay = 250;
  function connect() {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    ws.onopen = () => { delay = 250; $('conn').dataset.state = 'open'; $('conn').textContent = 'live'; };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === 'snapshot') { view = msg.view; top = msg.top; msg.events.forEach(addEvent); msg.history.forEach(addPoint); drawPlots(); }
      else if (msg.type === 'sample') { view = msg.view; top = msg.top; addPoint(msg.point); drawPlots(); }
      else if (msg.type === 'event') { view = msg.view; addEvent(msg.event); }
      render();
    };
    ws.onclose = () => {
      $('conn').dataset.state = 'closed';
      $('conn').textContent = 'disconnected; retrying';
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  }
  connect();
})();
</script>
</body>
</html>
`;
