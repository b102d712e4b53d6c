#!/usr/bin/env node
/**
 * Boot entry of a native node (EbbRT's native Runtime + AppMain). The main
 * thread supervises: it starts the cores, joins the frontend (challenge →
 * HMAC hello → welcome), heartbeats on its own event loop (never starved by a
 * busy app core), relays membership, and shuts down on goodbye or SIGTERM.
 */
import { Socket } from 'node:net';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { BootConfigError, parseBootConfig, type BootConfig } from '@ebbrt/ebb-protocol/node';
import type { CoreData, FromCore, ToCore } from './core-protocol.js';
import { ServiceBroker } from './shared.js';
import { parseExposure } from './expose.js';

/** Epoch ms with sub-ms precision, comparable across the node's threads and with its launcher's clock. */
const now = () => performance.timeOrigin + performance.now();
const importedAt = now();
let config: BootConfig;
let exposure: ReturnType<typeof parseExposure>;
try {
  config = parseBootConfig(process.argv.slice(2), process.env);
  exposure = parseExposure(config.services);
} catch (error) {
  if (error instanceof BootConfigError) {
    console.error(`ebbrt-native: ${error.message}`);
    process.exit(2);
  }
  throw error;
}

/** The boot's timeline when tracing it (--boot-trace 1): epoch ms of each point, the cores' under `core<N>.<point>`. */
const trace: Record<string, number> | undefined = config.bootTrace ? { start: performance.timeOrigin, imported: importedAt, configured: now() } : undefined;
const mark = (name: string) => {
  if (trace) trace[name] = now();
};

const prefix = () => `[native ${nodeId || '?'}]`;
let nodeId = 0;
// Declared before anything can call shutdown() (the parent pipe may close while the cores boot).
let stopping = false;
let supervisor: import('./membership.js').Supervisor | undefined;
/** Set when the launching frontend's process is gone (its pipe closed); a re-registration clears it. */
let orphanTimer: ReturnType<typeof setTimeout> | undefined;
if (config.parentFd !== undefined) {
  // The launching frontend holds the other end: the kernel closes it when that process ends, however it ends.
  const parent = new Socket({ fd: config.parentFd, readable: true, writable: false });
  parent.on('data', () => undefined);
  parent.on('error', () => undefined);
  parent.once('close', () => {
    if (stopping) return;
    if (config.reconnectMs === 0 || nodeId === 0) {
      console.error(`${prefix()} the frontend process that launched this node is gone; shutting down`);
      shutdown(1);
      return;
    }
    orphanTimer = setTimeout(() => {
      console.error(
        `${prefix()} the frontend process that launched this node is gone and no frontend took it back within ${config.reconnectMs} ms; shutting down`,
      );
      shutdown(1);
    }, config.reconnectMs);
  });
}
const workers: Worker[] = [];
const ports: (MessagePort | undefined)[][] = Array.from({ length: config.cores }, () => Array(config.cores).fill(undefined));
for (let i = 0; i < config.cores; i++) {
  for (let j = i + 1; j < config.cores; j++) {
    const channel = new MessageChannel();
    ports[i][j] = channel.port1;
    ports[j][i] = channel.port2;
  }
}

function startCore(core: number, fd?: number): Promise<{ worker: Worker; port: number; fd: number }> {
  const coreData: CoreData = {
    core,
    cores: config.cores,
    listenHost: config.listenHost,
    listenPort: config.listenPort,
    hostAlias: config.hostAlias,
    tls: config.tls,
    fd,
    ports: ports[core],
    app: config.app,
    args: config.args,
    trace: trace !== undefined,
    // A core listens before it loads the rest of the protocol stack, so the JOIN can start while it loads; a VM native
    // under emulation takes seconds for that load, and joining before it would leave the frontend's first connections
    // waiting (in the core's early queue) past their handshake deadline: its cores load first, as before.
    loadFirst: config.backend === 'qemu',
  };
  mark(`core${core}.spawned`);
  const worker = new Worker(new URL('./core.js', import.meta.url), {
    workerData: coreData,
    transferList: ports[core].filter((p): p is MessagePort => p !== undefined),
    resourceLimits: config.coreHeapMb ? { maxOldGenerationSizeMb: config.coreHeapMb } : undefined,
  });
  workers[core] = worker;
  worker.on('error', (error) => {
    // A core failing while the node stops (its socket already closed, its module load cut short) is part of stopping, not a crash.
    if (stopping) return;
    console.error(`${prefix()} core ${core} crashed: ${error.stack ?? error.message}`);
    shutdown(1);
  });
  if (trace)
    worker.on('message', (message: FromCore) => {
      if (message.t === 'mark') trace[`core${core}.${message.name}`] = message.at;
    });
  return new Promise((resolve) => {
    const onListening = (message: FromCore) => {
      if (message.t !== 'listening') return;
      worker.off('message', onListening);
      resolve({ worker, port: message.port, fd: message.fd });
    };
    worker.on('message', onListening);
  });
}

const toAll = (message: ToCore) => workers.forEach((w) => w.postMessage(message));
/**
 * Membership updates that reach the supervisor before the cores got their welcome (the frontend's first
 * update can share a read with the Welcome, when another node joins at the same time): a core drops an
 * update it has no runtime for, so they wait here and follow the welcome.
 */
let heldUpdates: Extract<ToCore, { t: 'membership' }>[] | undefined = [];
const relayMembership = (message: Extract<ToCore, { t: 'membership' }>) => (heldUpdates ? heldUpdates.push(message) : toAll(message));

// Cores sharing a listening socket take turns: libuv then yields after each accept instead
// of one core taking a whole burst of connections (memcaslap's 32 connects all landed on
// core 0 without it). libuv reads this once, at the process's first listen, so before any core starts.
process.env.UV_TCP_SINGLE_ACCEPT ??= '1';
// Core 0 opens the messenger socket; the other cores listen on its descriptor (docs/architecture.md, Cores).
// The supervisor loads the join's part of the protocol stack while core 0 boots and listens (a core
// listens before it loads the rest): the JOIN waits only for the longer of the two (bench rpc: join_*_ms).
const firstCore = startCore(0);
const [{ connectTcp, errorToWire, MemoryLocalIdMap }, { Supervisor }] = await Promise.all([import('@ebbrt/ebb-protocol/join'), import('./membership.js')]);
mark('protocolLoaded');
const localIdMap = new MemoryLocalIdMap();
const first = await firstCore;
mark('listening');
// The other cores start while the supervisor joins: the JOIN needs only core 0's port.
void Promise.all(Array.from({ length: config.cores - 1 }, (_, i) => startCore(i + 1, first.fd))).then(() => mark('coresListening'));

/** Cores that loaded the app module; heartbeats carry core counters only once all have (the frontend's sign the app loaded). */
let ready = 0;
/** Cores whose counters arrived since the last core loaded the app; the heartbeat that tells the frontend goes when all have. */
let freshStats: Set<number> | undefined;
/** Latest counters and in-flight calls each core reported (PROTOCOL.md §5.4). */
const coreStats: (import('@ebbrt/ebb-protocol/internal').CoreSnapshot | undefined)[] = [];
const coreInFlight: number[] = Array(config.cores).fill(0);
/** Node services the cores share (shared memory, shared listening sockets; shared.ts). */
const services = new ServiceBroker(exposure);
try {
  supervisor = await Supervisor.join(
    {
      frontendHost: config.frontendHost,
      frontendPort: config.frontendPort,
      proof: config.proof,
      allocationId: config.allocationId,
      cores: config.cores,
      host: config.advertise?.host ?? config.listenHost,
      port: config.advertise?.port ?? first.port,
      backend: config.backend,
      connect: (host, port) => connectTcp(host, port, undefined, config.tls),
      reconnectMs: config.reconnectMs,
    },
    {
      membership: (update) => relayMembership({ t: 'membership', update }),
      ended: (reason, how) => {
        if (how !== 'goodbye') console.error(`${prefix()} ${reason}; shutting down`);
        shutdown(how === 'lost' ? 1 : 0);
      },
      // The cores keep serving their peers meanwhile; only the frontend is missing.
      reconnecting: (reason) => console.error(`${prefix()} ${reason}; re-registering for up to ${config.reconnectMs} ms`),
      rejoined: (welcome) => {
        clearTimeout(orphanTimer);
        console.error(`${prefix()} re-registered with the frontend as node ${welcome.nodeId}`);
      },
    },
    {
      inFlight: () => coreInFlight.reduce((sum, n) => sum + n, 0),
      // Each heartbeat carries the counters the cores sent for the previous one, and asks for fresh ones.
      // Empty until every core loaded the app module: the allocator counts a node as started only once they are there.
      cores: () => {
        toAll({ t: 'stats' });
        return ready < config.cores ? [] : coreStats.filter((s) => s !== undefined);
      },
      services: () => services.services(),
    },
  );
  nodeId = supervisor.nodeId;
  mark('welcome');
  toAll({
    t: 'welcome',
    nodeId,
    incarnation: supervisor.incarnation,
    peers: supervisor.welcome.peers,
    address: config.advertise ? `${config.advertise.host}:${config.advertise.port}` : `${config.listenHost}:${first.port}`,
  });
  for (const message of heldUpdates) toAll(message);
  heldUpdates = undefined;
} catch (error) {
  console.error(`ebbrt-native: could not join the frontend at ${config.frontendHost}:${config.frontendPort}: ${(error as Error).message}`);
  await stopCores();
  process.exit(1);
}

for (const [core, worker] of workers.entries()) {
  worker.on('message', (message: FromCore) => {
    switch (message.t) {
      case 'ready':
        if (++ready < config.cores) return;
        workers[0].postMessage({ t: 'start' } satisfies ToCore);
        // The frontend learns that the app loaded from a heartbeat carrying every core's counters: send one as soon as they are in.
        freshStats = new Set();
        toAll({ t: 'stats' });
        if (trace) {
          mark('ready');
          console.error(`ebbrt-boot-trace ${JSON.stringify(trace)}`);
        }
        return;
      case 'allocateId':
        try {
          worker.postMessage({ t: 'id', req: message.req, id: supervisor.ids.allocate() } satisfies ToCore);
        } catch (error) {
          worker.postMessage({ t: 'id', req: message.req, error: errorToWire(error) } satisfies ToCore);
        }
        return;
      case 'local':
        localIdMap.apply(message.request).then(
          (value) => worker.postMessage({ t: 'local', req: message.req, value } satisfies ToCore),
          (error: unknown) => worker.postMessage({ t: 'local', req: message.req, error: errorToWire(error) } satisfies ToCore),
        );
        return;
      case 'service':
        Promise.resolve(services.handle(message.request)).then(
          (value) => worker.postMessage({ t: 'service', req: message.req, value } satisfies ToCore),
          (error: unknown) => worker.postMessage({ t: 'service', req: message.req, error: errorToWire(error) } satisfies ToCore),
        );
        return;
      case 'stats':
        coreStats[core] = message.snapshot;
        coreInFlight[core] = message.inFlight;
        if (freshStats?.add(core).size === config.cores) {
          freshStats = undefined;
          supervisor.heartbeatNow();
        }
        return;
      case 'mainDone':
        if (message.error) {
          console.error(`${prefix()} app main failed on core ${core}: ${message.error}`);
          shutdown(1);
        }
        return;
    }
  });
}

async function stopCores(): Promise<void> {
  await Promise.all(
    workers.map(
      (worker) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 1000);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          worker.postMessage({ t: 'stop' } satisfies ToCore);
        }),
    ),
  );
}

function shutdown(code: number): void {
  if (stopping) return;
  stopping = true;
  void stopCores().then(() => {
    supervisor?.close();
    process.exit(code);
  });
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
