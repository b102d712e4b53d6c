/**
 * Network mode `tap` (root only): each VM gets a tap device on a Linux
 * bridge and an address of its own there, the way EbbRT's launcher put each
 * native on a bridge. The bridge is either one the operator names (in the
 * host's namespace, with an IPv4 address of the host on it) or one the
 * backend creates for itself: a network namespace of its own holding the
 * bridge, joined to the host by a veth pair whose host end gets the first
 * address of a free /24. Everything created here gets a unique name and is
 * removed when its last VM ends (and, as a last resort, when this process exits).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { QemuError } from './errors.js';

const run = promisify(execFile);

/** One VM's place on the bridge. */
export interface TapAttachment {
  /** The tap device QEMU opens. */
  readonly tap: string;
  /** The VM's own address. */
  readonly address: string;
  /** `address-prefix`, as the guest's init reads it from `ebbrt.net`. */
  readonly net: string;
  /**
   * Puts the tap on the bridge, once QEMU opened it. QEMU runs in the host's
   * namespace (its user-mode NIC must reach the host's loopback) and opens the
   * tap there; a bridge in a namespace of its own gets the tap moved into it
   * afterwards (an open tap keeps working across the move).
   */
  plug(): Promise<void>;
  /** Deletes the tap device (and the backend's bridge once nothing uses it). */
  release(): Promise<void>;
}

async function ip(args: string[]): Promise<string> {
  try {
    return (await run('ip', args)).stdout;
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    throw new QemuError(
      'VM_CONFIG',
      `network mode tap: \`ip ${args.join(' ')}\` failed: ${stderr}${process.getuid?.() === 0 ? '' : ' (network mode tap needs root: run as root or use network mode user)'}`,
      { cause: error },
    );
  }
}

const toInt = (a: string) => a.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
const toAddress = (n: number) => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');

/** A bridge VMs are attached to, with addresses handed out from its subnet. */
export class TapNetwork {
  readonly bridge: string;
  /** The host's address on the bridge: VMs reach the host there, the host reaches them through it. */
  readonly hostAddress: string;
  readonly prefix: number;
  readonly netns?: string;
  readonly #teardown?: () => Promise<void>;
  readonly #used = new Set<number>();
  #taps = 0;
  #attached = 0;
  #closed?: Promise<void>;

  private constructor(bridge: string, hostAddress: string, prefix: number, netns?: string, teardown?: () => Promise<void>) {
    this.bridge = bridge;
    this.hostAddress = hostAddress;
    this.prefix = prefix;
    this.netns = netns;
    this.#teardown = teardown;
  }

  /** The operator's bridge `name`: it must exist and carry an IPv4 address of this host. */
  static async named(name: string): Promise<TapNetwork> {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name))
      throw new QemuError('VM_CONFIG', `bridge ${JSON.stringify(name)} is not a network interface name (1-15 letters, digits, _ . -)`);
    const info = JSON.parse(await ip(['-j', '-4', 'addr', 'show', 'dev', name])) as { addr_info?: { local: string; prefixlen: number }[] }[];
    const address = info[0]?.addr_info?.[0];
    if (!address)
      throw new QemuError(
        'VM_CONFIG',
        `bridge ${name} has no IPv4 address: give it one (ip addr add 10.77.0.1/24 dev ${name}) so the host and its VMs share a subnet`,
      );
    if (address.prefixlen > 29) throw new QemuError('VM_CONFIG', `bridge ${name}'s subnet /${address.prefixlen} is too small for VMs: use /29 or wider`);
    return new TapNetwork(name, address.local, address.prefixlen);
  }

  /** A bridge of the backend's own, in a new network namespace joined to the host by a veth pair. */
  static async create(): Promise<TapNetwork> {
    const id = randomBytes(3).toString('hex');
    const netns = `ebbrt-${process.pid}-${id}`;
    const hostEnd = `eb${id}h`;
    const routes = await ip(['-4', 'route', 'show']);
    let subnet = '';
    for (let tries = 0; tries < 32 && !subnet; tries++) {
      const candidate = `10.${128 + (randomBytes(1)[0] % 64)}.${randomBytes(1)[0]}`;
      if (!routes.includes(`${candidate}.`)) subnet = candidate;
    }
    if (!subnet) throw new QemuError('VM_CONFIG', 'network mode tap: found no free 10.128-191.x.0/24 subnet for the bridge; name a bridge of your own instead');
    const teardown = async () => {
      // Deleting the namespace deletes the bridge and the veth end inside it, and so its host end.
      await run('ip', ['netns', 'del', netns]).catch(() => undefined);
      await run('ip', ['link', 'del', hostEnd]).catch(() => undefined);
    };
    await ip(['netns', 'add', netns]);
    const cleanupOnExit = () => {
      try {
        execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    };
    process.once('exit', cleanupOnExit);
    try {
      await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', netns, 'link', 'add', 'br0', 'type', 'bridge']);
      await ip(['-n', netns, 'link', 'set', 'br0', 'up']);
      await ip(['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', netns]);
      await ip(['-n', netns, 'link', 'set', 'uplink', 'master', 'br0', 'up']);
      await ip(['addr', 'add', `${subnet}.1/24`, 'dev', hostEnd]);
      await ip(['link', 'set', hostEnd, 'up']);
    } catch (error) {
      await teardown();
      process.off('exit', cleanupOnExit);
      throw error;
    }
    return new TapNetwork('br0', `${subnet}.1`, 24, netns, async () => {
      process.off('exit', cleanupOnExit);
      await teardown();
    });
  }

  /** A tap device on the bridge with `queues` queues (one per VM core) and a free address for its VM. */
  async attach(queues: number): Promise<TapAttachment> {
    const size = 2 ** (32 - this.prefix);
    const network = toInt(this.hostAddress) - (toInt(this.hostAddress) % size);
    // On an operator's bridge other machines may sit low in the subnet: start half way up.
    let offset = this.netns ? 2 : Math.floor(size / 2);
    while ((this.#used.has(offset) || network + offset === toInt(this.hostAddress)) && offset < size - 1) offset++;
    if (offset >= size - 1) throw new QemuError('VM_CONFIG', `bridge ${this.bridge} has no free address left for another VM`);
    this.#used.add(offset);
    const tap = `ebt${process.pid % 100_000}x${this.#taps++}`.slice(0, 15);
    this.#attached++;
    try {
      await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap', ...(queues > 1 ? ['multi_queue'] : [])]);
    } catch (error) {
      await this.#release(tap, offset);
      throw error;
    }
    const address = toAddress(network + offset);
    const plug = async () => {
      if (this.netns) await ip(['link', 'set', tap, 'netns', this.netns]);
      await ip([...(this.netns ? ['-n', this.netns] : []), 'link', 'set', tap, 'master', this.bridge, 'up']);
    };
    return { tap, address, net: `${address}-${this.prefix}`, plug, release: () => this.#release(tap, offset) };
  }

  async #release(tap: string, offset: number): Promise<void> {
    this.#used.delete(offset);
    // In the bridge's namespace once plugged, in the host's before.
    if (this.netns) await run('ip', ['-n', this.netns, 'link', 'del', tap]).catch(() => undefined);
    await run('ip', ['link', 'del', tap]).catch(() => undefined);
    if (--this.#attached === 0 && this.#teardown) {
      this.#closed ??= this.#teardown();
      await this.#closed;
    }
  }

  /** True once the backend's own bridge was removed (a new one is made for the next VM). */
  get closed(): boolean {
    return this.#closed !== undefined;
  }
}
