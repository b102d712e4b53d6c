/**
 * The `qemu` backend: each native boots as its own virtual machine, a Linux
 * kernel whose one program is the native runtime (image built by
 * `@ebbrt/native`'s image builder, run here as a child process: hosted and
 * native never import each other).
 *
 * - accel `auto` uses KVM only when a quick probe boots a kernel under it
 *   (where /dev/kvm exists but guests hang, e.g. broken nested
 *   virtualisation, the probe gives up after `probeTimeoutMs`) and otherwise
 *   TCG, with a warning.
 * - the frontend address and allocation id travel on the kernel command line
 *   (`ebbrt.*`, percent-encoded), which every user of the host sees in the
 *   process list; the join token does not: it is a QEMU `fw_cfg` file
 *   (`opt/ebbrt/secrets`, JSON {@link BootSecrets}) read from a 0600 file in
 *   the node's run directory, deleted once QEMU has loaded it. The guest loads
 *   `qemu_fw_cfg` and hands the runtime that file as its secrets descriptor.
 * - user-mode networking: the guest is 10.0.2.15 and reaches the host's
 *   loopback at 10.0.2.2; a host port forward to the guest's messenger port
 *   is the address the node advertises, so the frontend and other nodes
 *   (processes or VMs) reach it at `127.0.0.1:<forwarded port>`.
 * - the serial console goes to a per-node log file (and to the captured
 *   output); stop = a goodbye, after which the runtime exits and the init
 *   powers the machine off; terminate = ACPI power button over QMP (the
 *   guest's acpid SIGTERMs the runtime); kill = SIGKILL of QEMU.
 */
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { bootKernelParams, bootVariable, FW_CFG_SECRETS, isThisMachine, type BootSecrets } from '@ebbrt/ebb-protocol/node';
import type { LaunchedProcess, LaunchSpec, NodeBackend } from '../backend.js';
import { QemuError } from './errors.js';
import { MIN_MEMORY_MIB, validate, type NetworkMode, type QemuBackendOptions } from './options.js';
import { buildNativeImage, imageCacheDir, readVmImage, type VmImage } from './image.js';
import { probeKvm } from './kvm.js';
import { exitOf, qemuMissing, spawnQemu } from './process.js';
import { connectWhenReady, Qmp } from './qmp.js';
import { serveForwards } from './forward.js';
import { TapNetwork, type TapAttachment } from './tap.js';
import { freePort } from './ports.js';
import { pruneRunDirs } from './run-dir.js';

/**
 * Failure timeout for frontends whose natives are VMs, ms. Under TCG a guest
 * busy booting its cores (each loads the app right after the join) can send
 * its supervisor's heartbeat more than a second late; 5 s keeps it a member.
 */
export const VM_FAILURE_TIMEOUT_MS = 5000;
/** Suspicion threshold for the same frontends, ms: a booting TCG guest's late heartbeats must not fail its calls. */
export const VM_SUSPECT_AFTER_MS = 2500;
/**
 * Connection limits of the same frontends: a TCG guest on a loaded host can
 * take more than the default 5 s to answer a new connection's handshake (the
 * frontend's first call to a tap-mode VM timed out so at load 18).
 */
export const VM_CONNECTION_LIMITS = { handshakeTimeoutMs: 15_000 } as const;

/**
 * A frontend's settings when its natives are VMs, the one rule `ebbrt run`, `ebbrt up` and `startCluster`
 * share: the failure detection given wins, else the VM thresholds above (the VM suspicion threshold only
 * when no failure timeout was given, which it must stay under), and the VM connection limits.
 */
export function vmFrontendOptions(given: { failureTimeoutMs?: number; suspectAfterMs?: number } = {}): {
  failureTimeoutMs: number;
  suspectAfterMs?: number;
  limits: typeof VM_CONNECTION_LIMITS;
} {
  return {
    failureTimeoutMs: given.failureTimeoutMs ?? VM_FAILURE_TIMEOUT_MS,
    suspectAfterMs: given.suspectAfterMs ?? (given.failureTimeoutMs === undefined ? VM_SUSPECT_AFTER_MS : undefined),
    limits: VM_CONNECTION_LIMITS,
  };
}

/** The guest port the native's messenger listens on; the host side is forwarded to it. */
const GUEST_PORT = 7000;
/** QEMU user networking: the guest reaches the host's loopback here. */
const HOST_FROM_GUEST = '10.0.2.2';
/** x86 COMMAND_LINE_SIZE. */
const MAX_CMDLINE = 2048;
/** The kernel hands at most 32 variables to init; keep room for its own (HOME, TERM). */
const MAX_ENV = 24;

/** Raised inside {@link QemuBackend} when QEMU could not bind the forwarded port (another process took it): retried. */
class PortTaken extends Error {}

/** Launches natives as QEMU virtual machines. */
export class QemuBackend implements NodeBackend {
  readonly name = 'qemu';
  readonly joinTimeoutMs: number;
  readonly #options: QemuBackendOptions;
  readonly #qemu: string;
  readonly #images = new Map<string, Promise<VmImage>>();
  #accel?: Promise<'kvm' | 'tcg'>;
  #tapNetwork?: Promise<TapNetwork>;

  constructor(options: QemuBackendOptions = {}) {
    validate(options);
    this.#options = options;
    this.#qemu = options.qemu ?? 'qemu-system-x86_64';
    this.joinTimeoutMs = options.joinTimeoutMs ?? 60_000;
  }

  /** The image for `app`: the prebuilt one, or one built (once per backend) into the cache. */
  image(app: string): Promise<VmImage> {
    const { imageDir } = this.#options;
    if (imageDir) return this.#images.get(imageDir) ?? this.#remember(imageDir, readVmImage(imageDir));
    const cacheDir = this.#options.cacheDir ?? imageCacheDir();
    const dir = path.join(cacheDir, `${path.basename(path.dirname(app))}-${createHash('sha256').update(app).digest('hex').slice(0, 12)}`);
    return this.#images.get(app) ?? this.#remember(app, buildNativeImage(app, dir));
  }

  #remember(key: string, image: Promise<VmImage>): Promise<VmImage> {
    this.#images.set(key, image);
    // A failed build is not cached: the next launch tries again.
    image.catch(() => this.#images.delete(key));
    return image;
  }

  /** The accelerator VMs will use; probes KVM once per backend. */
  accel(kernel: string): Promise<'kvm' | 'tcg'> {
    this.#accel ??= (async () => {
      const wanted = this.#options.accel ?? 'auto';
      if (wanted === 'tcg') return 'tcg';
      const probe = await probeKvm(kernel, { qemu: this.#qemu, timeoutMs: this.#options.probeTimeoutMs });
      if (probe.works) return 'kvm';
      if (wanted === 'kvm')
        throw new QemuError('KVM_UNAVAILABLE', `accel 'kvm' was asked for but KVM does not run guests here: ${probe.reason}; use accel 'auto' or 'tcg'`);
      (this.#options.warn ?? ((m: string) => process.stderr.write(`ebbrt: warning: ${m}\n`)))(
        `KVM is not usable (${probe.reason}; probed in ${probe.ms} ms): VM natives run under TCG emulation, several times slower`,
      );
      return 'tcg';
    })();
    this.#accel.catch(() => (this.#accel = undefined));
    return this.#accel;
  }

  /** The network mode of a launch: the spec's (its node group's), else the backend's, else `user`. */
  network(spec: LaunchSpec): NetworkMode {
    const mode = spec.network ?? this.#options.network ?? 'user';
    if (mode !== 'user' && mode !== 'tap') throw new QemuError('VM_CONFIG', `network mode must be 'user' or 'tap', got ${JSON.stringify(mode)}`);
    return mode;
  }

  /** The bridge tap-mode VMs join: the operator's (`options.bridge`), else one of the backend's own, made on first use and again after its last VM ended. */
  #bridge(): Promise<TapNetwork> {
    const current = this.#tapNetwork;
    if (current) return current.then((network) => (network.closed ? ((this.#tapNetwork = undefined), this.#bridge()) : network));
    const made = this.#options.bridge ? TapNetwork.named(this.#options.bridge) : TapNetwork.create();
    this.#tapNetwork = made;
    made.catch(() => (this.#tapNetwork = undefined));
    return made;
  }

  async launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    const mode = this.network(spec);
    if (mode === 'tap' && process.getuid?.() !== 0)
      throw new QemuError(
        'VM_CONFIG',
        'network mode tap needs root (it creates tap devices and a bridge): run as root, or use network mode user (the default), which forwards host ports instead',
      );
    const memoryMiB = spec.memoryMiB ?? this.#options.memoryMiB ?? 512;
    if (memoryMiB < MIN_MEMORY_MIB)
      throw new QemuError('VM_CONFIG', `a VM native needs at least ${MIN_MEMORY_MIB} MiB (its initramfs unpacks into RAM); got memoryMiB ${memoryMiB}`);
    // What the kernel command line cannot carry fails here, before an image is built or a VM started.
    this.#cmdline(spec, '127.0.0.1:1');
    const image = await this.image(spec.app);
    const accel = await this.accel(image.kernel);
    const logRoot = path.resolve(this.#options.logDir ?? path.join(os.tmpdir(), 'ebbrt-vms'));
    await mkdir(logRoot, { recursive: true });
    await pruneRunDirs(logRoot);
    const runDir = await mkdtemp(path.join(logRoot, `${spec.allocationId.slice(0, 8)}-`));
    const tap = mode === 'tap' ? await (await this.#bridge()).attach(spec.cores) : undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const node = await this.#boot(spec, image, accel, memoryMiB, runDir, tap);
        if (tap) void node.exited.then(() => tap.release());
        return node;
      } catch (error) {
        if (!(error instanceof PortTaken) || attempt === 3) {
          await tap?.release();
          throw error instanceof PortTaken ? new QemuError('VM_START_FAILED', error.message) : error;
        }
      }
    }
  }

  /** The kernel command line: console, then the native's configuration (`ebbrt.*`, read by its boot config), then extra environment. */
  #cmdline(spec: LaunchSpec, advertise: string, tap?: TapAttachment): string {
    const match = /^(.+):(\d+)$/.exec(spec.frontend);
    if (!match) throw new QemuError('VM_CONFIG', `the frontend address ${spec.frontend} is not host:port`);
    const frontendHost = isThisMachine(match[1]) ? HOST_FROM_GUEST : match[1];
    const params = [
      // Not `quiet`: the kernel's boot messages cost nothing measurable and make a failed boot's console say where it stopped.
      'console=ttyS0',
      'panic=-1',
      ...bootKernelParams(
        {
          frontend: `${frontendHost}:${match[2]}`,
          allocationId: spec.allocationId,
          cores: spec.cores,
          listenHost: '0.0.0.0',
          listenPort: GUEST_PORT,
          advertise,
          // Where the app's listeners are reached: a host port forwarded on request over the second serial port (user), or the VM's own address (tap).
          services: tap ? `address:${tap.address}` : 'forward:/dev/ttyS1',
          net: tap?.net,
          // Peers that advertise a loopback or wildcard address (process natives, other VMs' forwards, a frontend bound to 0.0.0.0) are on the host: 10.0.2.2 from inside.
          hostAlias: ['127.0.0.1', 'localhost', '0.0.0.0'].map((host) => `${host}=${HOST_FROM_GUEST}`).join(','),
          backend: 'qemu',
        },
        spec.args,
      ),
    ];
    if (spec.env[bootVariable('tlsCert')] !== undefined)
      throw new QemuError(
        'VM_CONFIG',
        'VM natives cannot join a TLS cluster yet: the certificates do not fit on the kernel command line; run the cluster without TLS or use the process backend',
      );
    const env = Object.entries(spec.env);
    if (env.length > MAX_ENV)
      throw new QemuError(
        'VM_CONFIG',
        `a VM native takes at most ${MAX_ENV} extra environment variables (the kernel passes at most 32 to init); got ${env.length}`,
      );
    for (const [key, value] of env) {
      // The kernel passes unknown `NAME=value` parameters to init as its environment; quotes protect spaces, nothing protects a quote.
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
        throw new QemuError('VM_CONFIG', `environment variable name ${JSON.stringify(key)} cannot travel on a kernel command line: use letters, digits and _`);
      if (/["\n\r\0]/.test(value))
        throw new QemuError('VM_CONFIG', `environment variable ${key} holds a double quote or a line break, which a kernel command line cannot carry`);
      params.push(/\s/.test(value) ? `${key}="${value}"` : `${key}=${value}`);
    }
    const cmdline = params.join(' ');
    if (cmdline.length >= MAX_CMDLINE)
      throw new QemuError(
        'VM_CONFIG',
        `the kernel command line would be ${cmdline.length} bytes, over the ${MAX_CMDLINE}-byte limit: pass fewer or shorter app arguments or environment variables`,
      );
    return cmdline;
  }

  async #boot(spec: LaunchSpec, image: VmImage, accel: 'kvm' | 'tcg', memoryMiB: number, runDir: string, tap?: TapAttachment): Promise<LaunchedProcess> {
    const frontendHost = /^(.+):\d+$/.exec(spec.frontend)?.[1] ?? '127.0.0.1';
    const hostSide = isThisMachine(frontendHost) ? '127.0.0.1' : frontendHost;
    const hostPort = tap ? GUEST_PORT : await freePort(hostSide);
    const consoleLog = path.join(runDir, 'console.log');
    const qmpSocket = path.join(runDir, 'qmp.sock');
    const secretsFile = path.join(runDir, 'secrets.json');
    await writeFile(secretsFile, JSON.stringify({ joinToken: spec.joinToken } satisfies BootSecrets), { mode: 0o600 });
    const portsSocket = path.join(runDir, 'ports.sock');
    await rm(qmpSocket, { force: true });
    await rm(portsSocket, { force: true });
    const network = tap
      ? [
          // eth0: the tap on the bridge, one queue per core (2 vectors per queue pair, plus config and control).
          '-netdev',
          `tap,id=tap0,ifname=${tap.tap},script=no,downscript=no${spec.cores > 1 ? `,queues=${spec.cores}` : ''}`,
          '-device',
          `virtio-net-pci,netdev=tap0${spec.cores > 1 ? `,mq=on,vectors=${2 * spec.cores + 2}` : ''}`,
          // eth1: user networking without forwards, only for reaching what the host binds on loopback (a frontend on 127.0.0.1, process natives).
          '-netdev',
          'user,id=net0',
          '-device',
          'virtio-net-pci,netdev=net0',
        ]
      : [
          '-netdev',
          `user,id=net0,hostfwd=tcp:${hostSide}:${hostPort}-:${GUEST_PORT}`,
          '-device',
          'virtio-net-pci,netdev=net0',
          // ttyS1: the port-forwarding channel (forward.ts).
          '-chardev',
          `socket,id=ports,path=${portsSocket},server=on,wait=off`,
          '-serial',
          'chardev:ports',
        ];
    const args = [
      '-M',
      'pc',
      '-accel',
      accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
      '-cpu',
      accel === 'kvm' ? 'host' : 'max',
      '-smp',
      String(spec.cores),
      '-m',
      String(memoryMiB),
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      // A guest reboot (a kernel panic with panic=-1) ends the VM instead of booting it again.
      '-no-reboot',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      this.#cmdline(spec, tap ? `${tap.address}:${GUEST_PORT}` : `${hostSide}:${hostPort}`, tap),
      // The join token, out of the process list: the guest reads it from /sys/firmware/qemu_fw_cfg (image init).
      '-fw_cfg',
      `name=${FW_CFG_SECRETS},file=${secretsFile}`,
      '-chardev',
      `stdio,id=console,signal=off,logfile=${consoleLog},logappend=off`,
      '-serial',
      'chardev:console',
      ...network,
      '-qmp',
      `unix:${qmpSocket},server=on,wait=off`,
    ];
    const child = spawnQemu(this.#qemu, args);
    let captured = '';
    let pending = '';
    const keep = (text: string) => (captured = (captured + text).slice(-64 * 1024));
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      keep(text);
      if (spec.stdio !== 'inherit') return;
      // The runtime's own lines; kernel lines (`[  1.23] …`) stay in the console log.
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (!/^\[\s*\d+\.\d+\]/.test(line) && line.trim()) process.stderr.write(`${line.replace(/\r$/, '')}\n`);
    });
    child.stderr!.setEncoding('utf8').on('data', keep);
    const exited = exitOf(child);
    void exited.then(() => rm(qmpSocket, { force: true }));
    const qmp = await Qmp.connect(qmpSocket, exited, 10_000);
    // QEMU read the fw_cfg file while it set the machine up, before QMP answered (or it failed).
    await rm(secretsFile, { force: true });
    if (!qmp) {
      child.kill('SIGKILL');
      const status = await exited;
      if (/spawn failed/.test(String(status))) throw qemuMissing(this.#qemu, new Error(String(status)));
      if (/host forwarding rule|Could not set up host forwarding/i.test(captured))
        throw new PortTaken(`QEMU could not forward port ${hostPort}: ${captured.trim()}`);
      throw new QemuError('VM_START_FAILED', `${this.#qemu} did not start the VM (exit ${status}): ${captured.trim().slice(-2000) || 'no output'}`);
    }
    void exited.then(() => qmp.close());
    if (tap) {
      // QMP answers once the machine is set up, so QEMU holds the tap open by now.
      try {
        await tap.plug();
      } catch (error) {
        child.kill('SIGKILL');
        await exited;
        throw error;
      }
    } else {
      const channel = await connectWhenReady(portsSocket, exited, 10_000, async (socket) => socket);
      if (channel) {
        serveForwards(channel, qmp, hostSide);
        void exited.then(() => channel.destroy());
      }
    }
    return {
      pid: child.pid ?? 0,
      exited,
      terminate: () => {
        // The ACPI power button: the guest's acpid SIGTERMs the runtime, whose exit powers the VM off.
        void qmp.execute('system_powerdown').then((reply) => {
          if (reply.error) child.kill('SIGTERM');
        });
      },
      kill: () => void child.kill('SIGKILL'),
      output: () => `${captured}${captured.endsWith('\n') || !captured ? '' : '\n'}[console log: ${consoleLog}]`,
    };
  }
}
