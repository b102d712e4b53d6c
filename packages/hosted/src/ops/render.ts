/** Text tables of `ebbrt ps` and `ebbrt top`. Pure functions of the admin API's JSON. */
import type { ClusterView, TopView } from './view.js';

/** Lays out rows under headers; columns listed in `right` are right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)}G`;
  return `${(bytes / 1024 ** 2).toFixed(1)}M`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

export function formatUs(us: number | null | undefined): string {
  if (us === null || us === undefined) return '-';
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)}s`;
  if (us >= 1000) return `${(us / 1000).toFixed(2)}ms`;
  return `${us.toFixed(0)}µs`;
}

export function formatRate(perSec: number): string {
  if (perSec === 0) return '0';
  if (perSec >= 100) return perSec.toFixed(0);
  if (perSec >= 10) return perSec.toFixed(1);
  return perSec.toFixed(2);
}

/** A group's hosted main as `ps` shows it. */
function mainText(main: ClusterView['groups'][number]['main']): string {
  if (!main) return '-';
  if (main.state === 'running') return 'running';
  return main.error === undefined ? `exited ${main.status}` : `threw: ${clip(main.error, 40)}`;
}

/** `ebbrt ps`: the node table and the Ebb table. */
export function psText(view: ClusterView): string {
  const nodes = table(
    ['ID', 'GROUP', 'BACKEND', 'ADDRESS', 'SERVICES', 'CORES', 'STATE', 'UPTIME', 'RSS', 'PID', 'REASON'],
    view.nodes.map((n) => [
      n.id ? String(n.id) : '-',
      n.group,
      n.backend,
      n.address || '-',
      n.services?.map((s) => s.address).join(' ') || '-',
      String(n.cores),
      n.state,
      formatDuration(n.uptimeMs),
      formatBytes(n.rssBytes),
      n.pid ? String(n.pid) : '-',
      n.state === 'joined' ? '' : `${n.replacedBy ? `replaced by ${n.replacedBy}: ` : ''}${clip(n.reason ?? '', 60)}`,
    ]),
    new Set([0, 5, 7, 8, 9]),
  );
  const ebbs = view.ebbs.length
    ? table(
        ['ID', 'NAME', 'POLICY', 'OWNER', 'REPS PER CORE (node:cores)'],
        view.ebbs.map((e) => [e.hex, e.name, e.policy, e.owner === null ? '-' : String(e.owner), e.reps.map((r) => `${r.node}:${r.cores}`).join(' ')]),
      )
    : '(no Ebb touched yet)';
  const groups = table(
    ['GROUP', 'APP', 'BACKEND', 'JOINED', 'REPLACED', 'FAILED REPLACEMENTS', 'REPLACING', 'MAIN'],
    view.groups.map((g) => [
      g.name,
      g.app,
      g.backend,
      `${g.joined}/${g.count}`,
      String(g.replaced),
      String(g.failedReplacements),
      String(g.pendingReplacements),
      mainText(g.main),
    ]),
    new Set([3, 4, 5, 6]),
  );
  return [
    `cluster ${view.cluster} (${view.status}) · frontend ${view.frontend} · admin http://${view.admin}/ · store ${view.store}`,
    '',
    groups,
    '',
    'NODES',
    nodes,
    '',
    'EBBS   reps: L real rep · c proxy to another core · r proxy to another node · p pending · . none',
    ebbs,
  ].join('\n');
}

/** One screen of `ebbrt top`. */
export function topText(top: TopView, view: ClusterView): string {
  const groupOf = new Map(view.nodes.filter((n) => n.id).map((n) => [n.id, n]));
  const ebbs = top.ebbs.length
    ? table(
        ['EBB', 'ID', 'CALLS/S', 'ERR/S', 'P50', 'P99', 'SERVED/S', 'SRV P99', 'CORE REPS', 'NODE/S', 'REMOTE/S'],
        top.ebbs.map((e) => [
          e.name,
          e.hex,
          formatRate(e.callsPerSec),
          formatRate(e.errorsPerSec),
          formatUs(e.p50Us),
          formatUs(e.p99Us),
          formatRate(e.servedPerSec),
          formatUs(e.servedP99Us),
          String(e.resolved.coreReps),
          formatRate(e.resolved.nodePerSec),
          formatRate(e.resolved.remotePerSec),
        ]),
        new Set([2, 3, 4, 5, 6, 7, 8, 9, 10]),
      )
    : '(no Ebb calls yet)';
  const nodes = table(
    ['NODE', 'GROUP', 'BACKEND', 'CALLS/S', 'ERR/S', 'SERVED/S', 'P50', 'P99', 'FAULTS/S', 'RSS', 'PER CORE (calls+served /s)'],
    top.nodes.map((n) => {
      const node = groupOf.get(n.nodeId);
      return [
        String(n.nodeId),
        node?.group ?? '?',
        node?.backend ?? '?',
        formatRate(n.callsPerSec),
        formatRate(n.errorsPerSec + n.servedErrorsPerSec),
        formatRate(n.servedPerSec),
        formatUs(n.p50Us),
        formatUs(n.p99Us),
        formatRate(n.faultsPerSec),
        formatBytes(node?.rssBytes),
        n.cores.map((c) => `${c.core}:${formatRate(c.callsPerSec + c.servedPerSec)}`).join(' '),
      ];
    }),
    new Set([0, 3, 4, 5, 6, 7, 8, 9]),
  );
  const down = view.nodes.filter((n) => n.state === 'failed' || n.state === 'booting');
  return [
    `ebbrt top · cluster ${top.cluster} · ${new Date(top.at).toLocaleTimeString()} · rates over ${(top.rateWindowMs / 1000).toFixed(1)}s, percentiles over ${(top.latencyWindowMs / 1000).toFixed(0)}s`,
    '',
    ebbs,
    '',
    nodes,
    ...(down.length ? ['', ...down.map((n) => `${n.state} ${n.group}${n.id ? ` node ${n.id}` : ''}: ${clip(n.reason ?? '', 100)}`)] : []),
    '',
    "CALLS/S = calls sent to reps on other cores (NODE/S) or nodes (REMOTE/S); calls that hit the caller's own rep (CORE REPS holds one) are direct calls and not counted.",
  ].join('\n');
}

function clip(text: string, n: number): string {
  const line = text.split('\n')[0];
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}
