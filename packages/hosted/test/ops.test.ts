/**
 * Cluster operations, the parts without sockets or processes: cluster-file
 * validation (one test per message: the bad field is named), the latency
 * histogram, rates and percentiles of ClusterMetrics, its Prometheus text,
 * the ps/top tables and the state file.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClusterFileError,
  ClusterMetrics,
  OpsError,
  ebbViews,
  findCluster,
  plotPoint,
  isRunning,
  loadClusterFile,
  locateClusterFile,
  processRef,
  psText,
  readState,
  removeState,
  stateDir,
  topText,
  validateCluster,
  writeState,
  type ClusterState,
  type ClusterView,
  type CoreSnapshot,
  type EbbSnapshot,
} from '@ebbrt/hosted';
import { LatencyHistogram, latencyBucket, bucketLowerUs, LATENCY_BUCKETS, RepKind } from '@ebbrt/ebb-protocol/internal';

const FILE = '/clusters/test.yaml';
const base = { name: 'demo', secret: 'a-long-enough-secret', groups: [{ name: 'workers', app: 'helloworld', count: 2, cores: 2 }] };

function badField(raw: unknown, env: NodeJS.ProcessEnv = {}): ClusterFileError {
  try {
    validateCluster(raw, FILE, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ClusterFileError);
    expect((error as ClusterFileError).code).toBe('BAD_CLUSTER_FILE');
    return error as ClusterFileError;
  }
  throw new Error('validateCluster accepted a bad cluster file');
}

describe('cluster file', () => {
  it('accepts a minimal file and fills in the defaults', () => {
    const spec = validateCluster(base, FILE, {});
    expect(spec).toMatchObject({
      name: 'demo',
      secretSource: 'inline',
      store: 'memory',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      detach: false,
    });
    expect(spec.groups).toHaveLength(1);
    expect(spec.groups[0]).toMatchObject({ name: 'workers', backend: 'process', count: 2, cores: 2, args: [], joinTimeoutMs: 20_000 });
    expect(spec.groups[0].paths.native).toMatch(/helloworld\/native\.js$/);
  });

  it('the example cluster file is valid: two process natives of helloworld and one of the counter service, detached', () => {
    const file = locateClusterFile('examples/cluster.yaml', '/');
    expect(file).toMatch(/packages\/examples\/cluster\.yaml$/);
    const spec = loadClusterFile(file);
    expect(spec.detach).toBe(true);
    expect(spec.groups.map((g) => [g.backend, g.count, g.app, g.args])).toEqual([
      ['process', 2, 'helloworld', []],
      ['process', 1, 'counter', ['--every', '200', '--increments', '1000']],
    ]);
  });

  it('a missing file says where it looked', () => {
    expect(() => locateClusterFile('nope/cluster.yaml', '/tmp')).toThrow(/no cluster file at \/tmp\/nope\/cluster\.yaml/);
  });

  it.each([
    ['top level', 'just a string', '(top level)', /must be a mapping/],
    ['unknown key', { ...base, nmae: 'x' }, 'nmae', /not a known field; known fields here: name, secret/],
    ['name', { ...base, name: 'Bad Name' }, 'name', /lower-case name/],
    ['short secret', { ...base, secret: 'short' }, 'secret', /at least 8 characters/],
    ['secret shape', { ...base, secret: { file: 'a', env: 'B' } }, 'secret', /exactly one of file and env/],
    ['secret env', { ...base, secret: { env: 'EBBRT_TEST_NO_SUCH_VAR' } }, 'secret.env', /EBBRT_TEST_NO_SUCH_VAR, which is not set/],
    ['secret file', { ...base, secret: { file: 'no-such-secret' } }, 'secret.file', /cannot be read \(\/clusters\/no-such-secret\)/],
    ['store', { ...base, store: 'postgres://x' }, 'store', /"memory" or a redis:\/\/host:port\/db/],
    ['listen', { ...base, listen: 'localhost' }, 'listen', /"host:port"/],
    ['admin port', { ...base, admin: '127.0.0.1:70000' }, 'admin', /"host:port"/],
    ['detach', { ...base, detach: 'yes' }, 'detach', /true or false/],
    ['heartbeat order', { ...base, heartbeatMs: 500, failureTimeoutMs: 400 }, 'failureTimeoutMs', /larger than heartbeatMs \(500\)/],
    ['groups not a list', { ...base, groups: 'workers' }, 'groups', /must be a list of node groups/],
    ['unset variable', { ...base, listen: '${EBBRT_TEST_NO_SUCH_IP}:7400' }, 'listen', /uses \$\{EBBRT_TEST_NO_SUCH_IP\}, which is not set/],
    ['group shape', { ...base, groups: [7] }, 'groups[0]', /must be a mapping/],
    ['group key', { ...base, groups: [{ name: 'a', app: 'helloworld', core: 2 }] }, 'groups[0].core', /not a known field/],
    ['group app', { ...base, groups: [{ name: 'a', app: 'no-such-app' }] }, 'groups[0].app', /names no app: no app "no-such-app"/],
    ['group backend', { ...base, groups: [{ name: 'a', app: 'helloworld', backend: 'docker' }] }, 'groups[0].backend', /one of process, qemu, got "docker"/],
    ['group count', { ...base, groups: [{ name: 'a', app: 'helloworld', count: -1 }] }, 'groups[0].count', /integer in 0\.\.256, got -1/],
    ['group cores', { ...base, groups: [{ name: 'a', app: 'helloworld', cores: 'two' }] }, 'groups[0].cores', /integer in 1\.\.256, got "two"/],
    ['group memory', { ...base, groups: [{ name: 'a', app: 'helloworld', memory: '12K' }] }, 'groups[0].memory', /at least 64 MiB/],
    ['group args', { ...base, groups: [{ name: 'a', app: 'helloworld', args: 'x' }] }, 'groups[0].args', /list of strings/],
    ['group arg', { ...base, groups: [{ name: 'a', app: 'helloworld', args: ['x', {}] }] }, 'groups[0].args[1]', /must be a string/],
    ['group network', { ...base, groups: [{ name: 'a', app: 'helloworld', network: 'tap' }] }, 'groups[0].network', /applies to qemu groups only/],
    ['suspect window', { ...base, heartbeatMs: 100, failureTimeoutMs: 1000, suspectAfterMs: 1000 }, 'suspectAfterMs', /smaller than failureTimeoutMs \(1000\)/],
    ['tls part missing', { ...base, tls: { cert: 'c.pem', key: 'k.pem' } }, 'tls.cert', /cannot be read \(\/clusters\/c\.pem\)/],
    ['tls key', { ...base, tls: { cert: 'c.pem', key: 'k.pem', ca: 'a.pem', crt: 'x' } }, 'tls.crt', /not a known field; known fields here: cert, key, ca/],
    ['secret key', { ...base, secret: { path: 'x' } }, 'secret.path', /not a known field; known fields here: file, env/],
    [
      'duplicate group',
      {
        ...base,
        groups: [
          { name: 'a', app: 'helloworld' },
          { name: 'a', app: 'counter' },
        ],
      },
      'groups[1].name',
      /used by two groups/,
    ],
  ])('%s: the message names %s', (_what, raw, field, message) => {
    const error = badField(raw);
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(error.message.startsWith(`test.yaml: ${field} `)).toBe(true);
  });

  it('secret from a file or an environment variable; none = generated per run', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-ops-'));
    try {
      writeFileSync(path.join(dir, 'secret'), 'secret-from-a-file\n');
      expect(validateCluster({ ...base, secret: { file: 'secret' } }, path.join(dir, 'c.yaml'), {})).toMatchObject({
        secret: 'secret-from-a-file',
        secretSource: 'file',
      });
    } finally {
      rmSync(dir, { recursive: true });
    }
    expect(validateCluster({ ...base, secret: { env: 'S' } }, FILE, { S: 'secret-from-env' })).toMatchObject({
      secret: 'secret-from-env',
      secretSource: 'env',
    });
    const { secret: _omit, ...noSecret } = base;
    const generated = validateCluster(noSecret, FILE, {});
    expect(generated.secretSource).toBe('generated');
    expect(generated.secret).toMatch(/^[0-9a-f]{32}$/);
  });

  it('${NAME} and ${NAME:-default} in strings come from the environment; no groups = a frontend for natives started elsewhere', () => {
    const spec = validateCluster({ ...base, listen: '${POD_IP}:7400', admin: '${ADMIN:-0.0.0.0}:7401', groups: [] }, FILE, { POD_IP: '10.1.2.3' });
    expect(spec.listen).toEqual({ host: '10.1.2.3', port: 7400 });
    expect(spec.admin).toEqual({ host: '0.0.0.0', port: 7401 });
    expect(spec.groups).toEqual([]);
  });

  it('qemu groups, memory sizes and Redis stores pass validation (their availability is checked at up)', () => {
    const spec = validateCluster(
      {
        ...base,
        store: 'redis://127.0.0.1:6379/2',
        groups: [
          { name: 'vms', app: 'helloworld', backend: 'qemu', memory: '1G' },
          { name: 'p', app: 'counter', memory: 256 },
        ],
      },
      FILE,
      {},
    );
    expect(spec.store).toBe('redis://127.0.0.1:6379/2');
    expect(spec.groups.map((g) => [g.backend, g.memoryMiB, g.joinTimeoutMs])).toEqual([
      ['qemu', 1024, 120_000],
      ['process', 256, 20_000],
    ]);
  });

  it('YAML syntax errors and JSON files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ebbrt-ops-'));
    try {
      writeFileSync(path.join(dir, 'bad.yaml'), 'name: [unclosed\n');
      expect(() => loadClusterFile(path.join(dir, 'bad.yaml'))).toThrow(/bad\.yaml is not valid YAML/);
      writeFileSync(path.join(dir, 'c.json'), JSON.stringify(base));
      expect(loadClusterFile(path.join(dir, 'c.json')).name).toBe('demo');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('LatencyHistogram', () => {
  it('buckets are log-linear: 0..3 µs exact, then 4 per power of two, bounded', () => {
    expect([0, 1, 3, 3.9].map(latencyBucket)).toEqual([0, 1, 3, 3]);
    for (let b = 4; b < LATENCY_BUCKETS - 1; b++) {
      // Every bucket's lower bound falls in it, and the value just below falls in the previous one.
      expect(latencyBucket(bucketLowerUs(b))).toBe(b);
      expect(latencyBucket(bucketLowerUs(b) - 0.5)).toBe(b - 1);
      expect(bucketLowerUs(b + 1) / bucketLowerUs(b)).toBeLessThanOrEqual(1.25);
    }
    expect(latencyBucket(-5)).toBe(0);
    expect(latencyBucket(Number.NaN)).toBe(0);
    expect(latencyBucket(1e12)).toBe(LATENCY_BUCKETS - 1);
  });

  it('percentiles are within a bucket (25 %) of the exact value', () => {
    const h = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 1; i <= 10_000; i++) {
      const us = 50 + ((i * 7919) % 5000);
      values.push(us);
      h.record(us / 1000);
    }
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = values[Math.ceil(q * values.length) - 1];
      expect(Math.abs(h.percentile(q)! - exact) / exact).toBeLessThan(0.25);
    }
    expect(new LatencyHistogram().percentile(0.5)).toBeUndefined();
  });

  it('sparse form round-trips; minus gives the samples since a snapshot; bad wire buckets are ignored', () => {
    const h = new LatencyHistogram();
    [0.01, 0.2, 0.2, 3].forEach((ms) => h.record(ms));
    const earlier = LatencyHistogram.fromSparse(h.toSparse());
    expect(earlier.total).toBe(4);
    [5, 5].forEach((ms) => h.record(ms));
    const since = h.minus(earlier);
    expect(since.total).toBe(2);
    expect(since.percentile(0.5)! / 5000).toBeCloseTo(1, 0);
    expect(LatencyHistogram.fromSparse({ bucket: [-1, 500, 3], count: [5, 5, 2] }).total).toBe(2);
  });
});

const ebb = (id: number, over: Partial<EbbSnapshot>): EbbSnapshot => ({
  id,
  name: 'Tally',
  policy: 'home',
  rep: RepKind.remoteProxy,
  repNode: 1,
  crossCoreCalls: 0,
  crossCoreErrors: 0,
  remoteCalls: 0,
  remoteErrors: 0,
  servedCalls: 0,
  servedErrors: 0,
  latency: { bucket: [], count: [] },
  servedLatency: { bucket: [], count: [] },
  ...over,
});
const core = (index: number, ebbs: EbbSnapshot[], over: Partial<CoreSnapshot> = {}): CoreSnapshot => ({
  core: index,
  faults: 0,
  remoteCalls: 0,
  crossCoreCalls: 0,
  servedCalls: 0,
  servedErrors: 0,
  messages: 0,
  ebbs,
  ...over,
});
const hist = (ms: number, n: number) => {
  const h = new LatencyHistogram();
  for (let i = 0; i < n; i++) h.record(ms);
  return h.toSparse();
};

function emptyView(): ClusterView {
  return {
    cluster: 't',
    status: 'up',
    startedAt: new Date().toISOString(),
    frontend: '127.0.0.1:1',
    admin: '127.0.0.1:2',
    store: 'memory',
    groups: [],
    nodes: [],
    ebbs: [],
  };
}

describe('ClusterMetrics', () => {
  let metrics: ClusterMetrics | undefined;
  afterEach(() => metrics?.close());

  it('rates come from the last two samples, percentiles from the window; errors and resolution are split', () => {
    let samples = new Map<number, CoreSnapshot[]>([[2, [core(0, [ebb(0x8001, { remoteCalls: 100, latency: hist(0.1, 100) })], { remoteCalls: 100 })]]]);
    // Both samples at fixed times exactly one second apart, however long the machine takes between them.
    const realNow = Date.now;
    const start = realNow();
    Date.now = () => start;
    try {
      metrics = new ClusterMetrics({ cluster: 't', collect: () => samples, view: emptyView, frontendStats: () => ({ joins: 1 }), intervalMs: 60_000 });
    } finally {
      Date.now = realNow;
    }
    // One second later: 200 more remote calls (20 failed), 50 cross-core ones, served calls on node 1.
    samples = new Map([
      [
        2,
        [
          core(0, [ebb(0x8001, { remoteCalls: 300, remoteErrors: 20, crossCoreCalls: 50, latency: hist(0.1, 280) })], {
            remoteCalls: 300,
            crossCoreCalls: 50,
            faults: 1,
          }),
        ],
      ],
      [1, [core(0, [ebb(0x8001, { rep: RepKind.local, repNode: 1, servedCalls: 280, servedLatency: hist(0.02, 280) })], { servedCalls: 280 })]],
    ]);
    Date.now = () => start + 1000;
    try {
      metrics.sample();
    } finally {
      Date.now = realNow;
    }
    const top = metrics.top();
    expect(top.rateWindowMs).toBe(1000);
    const tally = top.ebbs.find((e) => e.id === 0x8001)!;
    expect(tally.resolved.remotePerSec).toBeCloseTo(200, -1);
    expect(tally.resolved.nodePerSec).toBeCloseTo(50, -1);
    expect(tally.callsPerSec).toBeCloseTo(250, -1);
    expect(tally.errorsPerSec).toBeCloseTo(20, -1);
    expect(tally.resolved.coreReps).toBe(1);
    expect(tally.p50Us! / 100).toBeCloseTo(1, 0);
    expect(tally.servedP99Us! / 20).toBeCloseTo(1, 0);
    const node2 = top.nodes.find((n) => n.nodeId === 2)!;
    expect(node2.callsPerSec).toBeCloseTo(250, -1);
    expect(node2.faultsPerSec).toBeCloseTo(1, 0);
    expect(node2.cores).toHaveLength(1);
  });

  it('exports Prometheus text: counters per node and Ebb, a histogram with cumulative buckets', async () => {
    const samples = new Map<number, CoreSnapshot[]>([[2, [core(0, [ebb(0x8001, { remoteCalls: 7, remoteErrors: 1, latency: hist(0.1, 6) })], { faults: 3 })]]]);
    metrics = new ClusterMetrics({
      cluster: 'promtest',
      collect: () => samples,
      view: emptyView,
      frontendStats: () => ({ joins: 2, deaths: 1 }),
      intervalMs: 60_000,
    });
    const text = await metrics.metrics();
    expect(text).toContain('# TYPE ebbrt_ebb_calls_total counter');
    expect(text).toMatch(/ebbrt_ebb_calls_total\{node="2",ebb="0x8001",name="Tally",resolved="remote",cluster="promtest"\} 7/);
    expect(text).toMatch(/ebbrt_ebb_call_errors_total\{node="2",ebb="0x8001",name="Tally",resolved="remote",cluster="promtest"\} 1/);
    expect(text).toMatch(/ebbrt_core_faults_total\{node="2",core="0",cluster="promtest"\} 3/);
    expect(text).toContain('# TYPE ebbrt_ebb_call_duration_seconds histogram');
    // 6 calls of 100 µs: none under 64 µs, all under 128 µs.
    expect(text).toMatch(/ebbrt_ebb_call_duration_seconds_bucket\{node="2",ebb="0x8001",name="Tally",core="0",le="0\.000064",cluster="promtest"\} 0/);
    expect(text).toMatch(/ebbrt_ebb_call_duration_seconds_bucket\{node="2",ebb="0x8001",name="Tally",core="0",le="0\.000128",cluster="promtest"\} 6/);
    expect(text).toMatch(/ebbrt_ebb_call_duration_seconds_count\{node="2",ebb="0x8001",name="Tally",core="0",cluster="promtest"\} 6/);
    expect(text).toMatch(/ebbrt_frontend_events_total\{event="deaths",cluster="promtest"\} 1/);
    expect(text).toContain('ebbrt_frontend_process_resident_memory_bytes');
  });
});

describe('ps and top tables', () => {
  it("reps per core: L real, r remote proxy, c core proxy; the home Ebb's owner is where the real rep is", () => {
    const samples = new Map<number, CoreSnapshot[]>([
      [1, [core(0, [ebb(0x8001, { rep: RepKind.local })])]],
      [
        2,
        [
          core(0, [ebb(0x8001, { rep: RepKind.remoteProxy, repNode: 1 })]),
          core(1, [ebb(0x8001, { rep: RepKind.remoteProxy, repNode: 1 }), ebb(0x8002, { name: 'Echo', policy: 'multicore', rep: RepKind.local })]),
        ],
      ],
    ]);
    const views = ebbViews(samples, (node) => (node === 2 ? 2 : 1));
    expect(views).toEqual([
      {
        id: 0x8001,
        hex: '0x8001',
        name: 'Tally',
        policy: 'home',
        owner: 1,
        reps: [
          { node: 1, cores: 'L' },
          { node: 2, cores: 'rr' },
        ],
      },
      { id: 0x8002, hex: '0x8002', name: 'Echo', policy: 'multicore', owner: null, reps: [{ node: 2, cores: '.L' }] },
    ]);
    const view: ClusterView = {
      ...emptyView(),
      nodes: [
        {
          id: 2,
          group: 'workers',
          backend: 'process',
          address: '127.0.0.1:9',
          services: [{ name: 'memcached:5', address: '127.0.0.1:11211' }],
          cores: 2,
          state: 'joined',
          startedAt: '',
          uptimeMs: 65_000,
          rssBytes: 80 * 1024 * 1024,
          pid: 42,
        },
        {
          id: 3,
          group: 'vms',
          backend: 'qemu',
          address: '10.128.0.2:7000',
          services: [
            { name: 'memcached:5', address: '10.128.0.2:11212' },
            { name: 'admin', address: '10.128.0.2:80' },
          ],
          cores: 2,
          state: 'joined',
          startedAt: '',
          uptimeMs: 5_000,
          rssBytes: 80 * 1024 * 1024,
          pid: 43,
        },
      ],
      ebbs: views,
    };
    const text = psText(view);
    expect(text).toMatch(/ 2 +workers +process +127\.0\.0\.1:9 +127\.0\.0\.1:11211 +2 +joined +1m05s +80\.0M +42/);
    expect(text).toMatch(/ 3 +vms +qemu +10\.128\.0\.2:7000 +10\.128\.0\.2:11212 10\.128\.0\.2:80 +2 +joined/);
    expect(text).toMatch(/0x8001 +Tally +home +1 +1:L 2:rr/);
    const top = topText(
      {
        cluster: 't',
        at: Date.now(),
        rateWindowMs: 1000,
        latencyWindowMs: 10_000,
        ebbs: [],
        nodes: [
          {
            nodeId: 2,
            callsPerSec: 12.5,
            errorsPerSec: 0,
            servedPerSec: 0,
            servedErrorsPerSec: 0,
            faultsPerSec: 0,
            messagesPerSec: 0,
            p50Us: 150,
            p99Us: 2500,
            cores: [{ core: 0, callsPerSec: 12.5, servedPerSec: 0 }],
          },
        ],
      },
      view,
    );
    expect(top).toMatch(/ 2 +workers +process +12\.5 +0 +0 +150µs +2\.50ms/);
  });

  it('a dashboard plot point: the same rates and p50/p99 as top, sent + served per node and core, RSS of joined nodes only, the busiest Ebbs first', () => {
    const rate = (id: number, name: string, callsPerSec: number) => ({
      id,
      hex: `0x${id.toString(16)}`,
      name,
      policy: 'home',
      callsPerSec,
      errorsPerSec: 1,
      servedPerSec: 0,
      servedErrorsPerSec: 0,
      p50Us: 100 + id,
      p99Us: 900,
      servedP50Us: null,
      servedP99Us: null,
      resolved: { coreReps: 1, nodePerSec: 0, remotePerSec: callsPerSec },
    });
    const node = (nodeId: number) => ({
      nodeId,
      callsPerSec: 10,
      errorsPerSec: 1,
      servedPerSec: 5,
      servedErrorsPerSec: 2,
      faultsPerSec: 0,
      messagesPerSec: 0,
      p50Us: 120,
      p99Us: 800,
      cores: [
        { core: 0, callsPerSec: 4, servedPerSec: 1 },
        { core: 1, callsPerSec: 6, servedPerSec: 4 },
      ],
    });
    const top = {
      cluster: 't',
      at: 1234,
      rateWindowMs: 1000,
      latencyWindowMs: 10_000,
      ebbs: [rate(0x8001, 'Slow', 1), ...Array.from({ length: 20 }, (_, i) => rate(0x9000 + i, `E${i}`, 10 + i))],
      nodes: [node(2), node(3)],
    };
    const view: ClusterView = {
      ...emptyView(),
      nodes: [
        { id: 2, group: 'w', backend: 'process', address: '', cores: 2, state: 'joined', startedAt: '', rssBytes: 5e7 },
        { id: 3, group: 'w', backend: 'process', address: '', cores: 2, state: 'failed', startedAt: '' },
      ],
    };
    const point = plotPoint(top, view);
    expect(point.at).toBe(1234);
    expect(point.ebbs).toHaveLength(16);
    expect(point.ebbs[0]).toEqual({ id: 0x9013, name: 'E19', calls: 29, errors: 1, p50: 0x9013 + 100, p99: 900 });
    expect(point.ebbs.some((e) => e.name === 'Slow')).toBe(false);
    expect(point.nodes).toEqual([{ id: 2, calls: 15, errors: 3, p50: 120, p99: 800, rss: 5e7, cores: [5, 10] }]);
  });
});

describe('state file', () => {
  it('is written 0600, found by name or as the only one, removed with its log and folder', () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ebbrt-ops-')), 'state');
    const state: ClusterState = {
      version: 1,
      cluster: 'one',
      file: FILE,
      status: 'up',
      frontendProcess: processRef(process.pid),
      detached: false,
      frontend: 'a:1',
      admin: 'a:2',
      token: 't',
      startedAt: '',
      log: path.join(dir, 'one.log'),
      nodes: [],
    };
    expect(() => findCluster(dir)).toThrow(OpsError);
    writeState(dir, state);
    expect(statSync(path.join(dir, 'one.json')).mode & 0o777).toBe(0o600);
    expect(findCluster(dir)).toEqual(state);
    writeState(dir, { ...state, cluster: 'two' });
    expect(() => findCluster(dir)).toThrow(/several clusters are up .*one, two.*--cluster/);
    expect(findCluster(dir, 'two').cluster).toBe('two');
    writeFileSync(state.log, 'log line\n');
    removeState(dir, 'one', { log: true });
    removeState(dir, 'two', { log: true });
    expect(readState(dir, 'one')).toBeUndefined();
    expect(() => statSync(dir)).toThrow();
  });

  it('a recorded process with another start time is not running (pid reuse)', () => {
    const me = processRef(process.pid);
    expect(isRunning(me)).toBe(true);
    expect(me.startTime, 'a start time read from /proc').toBeTypeOf('number');
    expect(isRunning({ pid: process.pid, startTime: me.startTime! + 1 })).toBe(false);
    expect(isRunning({ pid: 0 })).toBe(false);
  });
});

describe('stateDir', () => {
  it('is per user, not per working directory: flag, EBBRT_STATE_DIR, $XDG_STATE_HOME/ebbrt, ~/.ebbrt', () => {
    expect(stateDir('/x/flag', { EBBRT_STATE_DIR: '/x/env', XDG_STATE_HOME: '/x/xdg', HOME: '/home/u' })).toBe('/x/flag');
    expect(stateDir(undefined, { EBBRT_STATE_DIR: '/x/env', XDG_STATE_HOME: '/x/xdg', HOME: '/home/u' })).toBe('/x/env');
    expect(stateDir(undefined, { XDG_STATE_HOME: '/x/xdg', HOME: '/home/u' })).toBe('/x/xdg/ebbrt');
    // A relative XDG_STATE_HOME is invalid per the spec and ignored.
    expect(stateDir(undefined, { XDG_STATE_HOME: 'rel', HOME: '/home/u' })).toBe('/home/u/.ebbrt');
    expect(stateDir(undefined, { HOME: '/home/u' })).toBe('/home/u/.ebbrt');
  });
});
