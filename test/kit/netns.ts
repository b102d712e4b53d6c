/**
 * A network lab of Linux network namespaces for fault tests across real
 * network boundaries (iproute2, root). One hub namespace holds a bridge; every
 * host of the lab is a namespace of its own joined to the bridge by a veth
 * pair, and the test process's namespace joins it through one more veth pair,
 * so the frontend the test runs in-process has an address on the lab network
 * too. A partition is the host's bridge port set down (the kernel then drops
 * every frame: no RST, no FIN, the peers only notice by silence). Latency,
 * jitter and loss come from {@link FaultProxy} (user space: the test
 * machines' kernel lacks netem) placed on the path.
 *
 * Names are unique per test process (pid) and lab; every namespace and link
 * is removed when the test finishes, and at process exit if it dies first.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { promisify } from 'node:util';
import { onTestFinished } from 'vitest';
import { ProcessBackend, type LaunchSpec } from '@ebbrt/hosted';
import { FaultProxy, type FaultSettings } from './fault-proxy.mjs';
import { NATIVE_BOOT } from './index.js';

const run = promisify(execFile);

export type NetnsAvailability = { ok: true } | { ok: false; reason: string };

let probed: Promise<NetnsAvailability> | undefined;

/** Can this process make namespaces and veth pairs? Probed once. Under CI=true a missing capability is a failure, not a skip. */
export function netnsAvailability(): Promise<NetnsAvailability> {
  probed ??= (async (): Promise<NetnsAvailability> => {
    if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' };
    if (process.getuid?.() !== 0) return { ok: false, reason: 'network namespaces need root (CI runs as root)' };
    const ns = `ebprobe${process.pid}`;
    try {
      await run('ip', ['netns', 'add', ns]);
      await run('ip', ['-n', ns, 'link', 'add', 'name', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
      await run('ip', ['-n', ns, 'link', 'add', 'name', 'br', 'type', 'bridge']);
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: `cannot make a network namespace with a veth pair and a bridge: ${(error as Error).message.split('\n')[0]}` };
    } finally {
      await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    }
  })();
  return probed;
}

/** A namespace of the lab. */
export interface LabHost {
  readonly name: string;
  /** The namespace's name (for `ip netns exec`). */
  readonly ns: string;
  /** Its address on the lab network. */
  readonly address: string;
  /** Cuts it off the lab network (its bridge port down). */
  partition(): Promise<void>;
  /** Joins it again. */
  heal(): Promise<void>;
  /** Spawns `command` inside the namespace; killed when the lab closes. */
  spawn(command: string, args: readonly string[], options?: { env?: NodeJS.ProcessEnv; stdio?: 'ignore' | 'pipe' }): ChildProcess;
}

/** Options of natives the lab backend launches. */
export interface LabNativeOptions {
  /** Put a {@link FaultProxy} on every path to and from each native (frontend ↔ native and native ↔ native). */
  faults?: FaultSettings;
}

let labs = 0;

export class Lab {
  readonly id: string;
  /** The test process's address on the lab network: bind the frontend (and proxies) here. */
  readonly hostAddress: string;
  readonly hosts: LabHost[] = [];
  readonly proxies: FaultProxy[] = [];
  readonly #hub: string;
  readonly #rootLink: string;
  readonly #prefix: string;
  readonly #children = new Set<ChildProcess>();
  #closed = false;
  #nextIndex = 2;
  /** Every namespace made or being made (a host half set up when the lab closes is removed too). */
  readonly #names = new Set<string>();
  readonly #cleanupAtExit = () => this.#removeSync();

  private constructor(id: string, prefix: string) {
    this.id = id;
    this.#prefix = prefix;
    this.#hub = `${id}-hub`;
    this.#rootLink = `${id}h`;
    this.hostAddress = `${prefix}.1`;
  }

  /** Makes a lab (hub namespace, bridge, the test process's link); closed when the test finishes. */
  static async create(): Promise<Lab> {
    // Interface names are at most 15 characters; the id is short and unique per process and lab.
    const n = labs++;
    const id = `eb${process.pid.toString(36)}${n.toString(36)}`;
    const lab = new Lab(id, await freeSubnet(n));
    process.once('exit', lab.#cleanupAtExit);
    onTestFinished(() => lab.close());
    try {
      await ip('netns', 'add', lab.#hub);
      await ip('-n', lab.#hub, 'link', 'add', 'name', 'br0', 'type', 'bridge');
      await ip('-n', lab.#hub, 'link', 'set', 'br0', 'up');
      await ip('link', 'add', 'name', lab.#rootLink, 'type', 'veth', 'peer', 'name', 'root', 'netns', lab.#hub);
      await ip('-n', lab.#hub, 'link', 'set', 'root', 'master', 'br0', 'up');
      await ip('addr', 'add', `${lab.hostAddress}/24`, 'dev', lab.#rootLink);
      await ip('link', 'set', lab.#rootLink, 'up');
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  /** Adds a host: a namespace joined to the bridge, with loopback up. */
  async host(name: string): Promise<LabHost> {
    // A native group may still launch a replacement while the test tears down: nothing is made after close.
    if (this.#closed) throw new Error(`the lab ${this.id} is closed`);
    // Taken before the first await: hosts are added concurrently (natives boot in parallel).
    const index = this.#nextIndex++;
    if (index > 250) throw new Error('a lab holds at most 249 hosts');
    const ns = `${this.id}-${name}`;
    this.#names.add(ns);
    const port = `p${index}`;
    const address = `${this.#prefix}.${index}`;
    await ip('netns', 'add', ns);
    await ip('-n', this.#hub, 'link', 'add', 'name', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await ip('-n', this.#hub, 'link', 'set', port, 'master', 'br0', 'up');
    await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    const lab = this;
    const host: LabHost = {
      name,
      ns,
      address,
      partition: () => ip('-n', this.#hub, 'link', 'set', port, 'down'),
      heal: () => ip('-n', this.#hub, 'link', 'set', port, 'up'),
      spawn(command, args, options = {}) {
        const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { env: options.env ?? process.env, stdio: options.stdio ?? 'ignore' });
        lab.#children.add(child);
        child.once('exit', () => lab.#children.delete(child));
        return child;
      },
    };
    this.hosts.push(host);
    return host;
  }

  /**
   * A backend (name `lab`) that launches each native in a new host of the
   * lab, listening on its lab address; with `faults`, every path to and from
   * the native passes a {@link FaultProxy} in the test's namespace (the native
   * advertises the proxy's address and joins the frontend through another).
   */
  backend(options: LabNativeOptions = {}): ProcessBackend {
    let natives = 0;
    return new ProcessBackend(NATIVE_BOOT, {
      name: 'lab',
      wrap: async (spec: LaunchSpec) => {
        const host = await this.host(`n${++natives}`);
        const listenPort = 7000;
        const env: Record<string, string> = { EBBRT_LISTEN_HOST: host.address, EBBRT_LISTEN_PORT: String(listenPort) };
        if (options.faults) {
          const [frontendHost, frontendPort] = spec.frontend.split(':');
          const toFrontend = await FaultProxy.start({ host: frontendHost, port: Number(frontendPort) }, { ...options.faults, listenHost: this.hostAddress });
          const toNative = await FaultProxy.start({ host: host.address, port: listenPort }, { ...options.faults, listenHost: this.hostAddress });
          this.proxies.push(toFrontend, toNative);
          Object.assign(env, { EBBRT_FRONTEND: toFrontend.url, EBBRT_ADVERTISE: toNative.url });
        }
        return { command: ['ip', 'netns', 'exec', host.ns], env };
      },
    });
  }

  /** The lab host a native launched by {@link backend} runs in, by the address it listens on (`Member.host` without faults). */
  hostOf(address: string): LabHost | undefined {
    return this.hosts.find((h) => h.address === address.split(':')[0]);
  }

  /** Kills what runs in the lab and removes every namespace and link. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    process.off('exit', this.#cleanupAtExit);
    await Promise.all(this.proxies.map((p) => p.close()));
    for (const child of this.#children) child.kill('SIGKILL');
    await Promise.all([...this.#children].map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined)));
    // Deleting a namespace deletes the veth ends in it, and so their peers.
    for (const ns of this.#names) await ip('netns', 'del', ns).catch(() => undefined);
    await ip('netns', 'del', this.#hub).catch(() => undefined);
    await ip('link', 'del', this.#rootLink).catch(() => undefined);
  }

  #removeSync(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    for (const ns of [...this.#names, this.#hub]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (error) {
    throw new Error(`ip ${args.join(' ')} failed: ${((error as { stderr?: string }).stderr || (error as Error).message).trim()}`);
  }
}

/** A 10.x.y.0/24 no interface of the test's namespace uses (other labs of this or another test process). */
async function freeSubnet(n: number): Promise<string> {
  const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const x = 100 + ((process.pid + attempt) % 100);
    const y = (n * 7 + attempt * 13 + (process.pid >> 7)) % 250;
    const prefix = `10.${x}.${y}`;
    if (!stdout.includes(` ${prefix}.`)) return prefix;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the lab');
}

/** Resolves once `host:port` accepts a TCP connection from this namespace; rejects after `ms`. */
export async function reachable(host: string, port: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port, timeout: 500 });
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => (socket.destroy(), resolve(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${host}:${port} not reachable within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
