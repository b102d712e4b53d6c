/**
 * The dashboard page the admin server serves at `/`: one self-contained HTML
 * document (no external assets, so it works offline and under a strict CSP)
 * fed over WebSocket (`/ws`, see admin.ts): the node map with per-core
 * rates, calls/s, errors and latency per Ebb, and joins and failures as they
 * happen. Everything is rendered with textContent (no HTML from the feed).
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
    body.replaceChildren();
    const ids = new Set([...view.ebbs.map((e) => e.id), ...rates.keys()]);
    if (ids.size === 0) { body.append(el('tr', {}, el('td', { colspan: 12, class: 'empty' }, 'no Ebb touched yet'))); return; }
    for (const id of [...ids].sort((a, b) => a - b)) {
      const e = view.ebbs.find((x) => x.id === id);
      const r = rates.get(id);
      const reps = e ? e.reps.map((x) => x.node + ':' + x.cores).join(' ') : '';
      body.append(el('tr', { 'data-ebb-id': id },
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
      if (msg.type === 'snapshot') { view = msg.view; top = msg.top; msg.events.forEach(addEvent); }
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
