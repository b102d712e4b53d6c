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
 * - the frontend address, secret and allocation id travel on the kernel
 *   command line (`ebbrt.*`, percent-encoded). QEMU's arguments, and so the
 *   secret, are visible to every user of the host in the process list
 *   (a process native's environment is readable by its owner only).
 * - user-mode networking: the guest is 10.0.2.15 and reaches the host's
 *   loopback at 10.0.2.2; a host port forward to the guest's messenger port
 *   is the address the node advertises, so the frontend and other nodes
 *   (processes or VMs) reach it at `127.0.0.1:<forwarded port>`.
 * - the serial console goes to a per-node log file (and to the captured
 *   output); stop = a goodbye, after which the runtime exits and the init
 *   powers the machine off; terminate = ACPI power button over QMP (the
 *   guest's acpid SIGTERMs the runtime); kill = SIGKILL of QEMU.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, accessSync, constants as fsConstants } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EbbError } from '@ebbrt/ebb-protocol';
import type { LaunchedNode, LaunchSpec, NodeBackend } from './backend.js';
import { resolveNativeBoot } from './process.js';

/** Stable codes of {@link QemuError}. */
export type QemuErrorCode =
  /** qemu-system-x86_64 is not installed (or `options.qemu` is wrong). */
  | 'QEMU_NOT_FOUND'
  /** accel 'kvm' was asked for and KVM guests do not run here. */
  | 'KVM_UNAVAILABLE'
  /** The native image could not be built (the builder's message says which input). */
  | 'IMAGE_BUILD_FAILED'
  /** QEMU refused to start the machine. */
  | 'VM_START_FAILED'
  /** The launch cannot be expressed for a VM (too little memory, environment or arguments the kernel command line cannot carry). */
  | 'VM_CONFIG';

/** The qemu backend could not start a VM native. */
export class QemuError extends EbbError {
  constructor(code: QemuErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** How VMs execute guest code. */
export type Accel = 'auto' | 'kvm' | 'tcg';

/** Options of {@link QemuBackend}. */
export interface QemuBackendOptions {
  /** `auto` (default): KVM when the probe shows it works, else TCG with a warning. `kvm` fails with KVM_UNAVAILABLE where the probe fails. */
  accel?: Accel;
  /** A prebuilt image directory (`ebbrt image build <app> --out DIR`). Default: built on first launch of each app into `cacheDir`, rebuilt when its inputs change. */
  imageDir?: string;
  /** Where images built on demand go. Default `$EBBRT_IMAGE_CACHE`, else `~/.cache/ebbrt/images`. */
  cacheDir?: string;
  /** Per-node console logs (and QMP sockets) go in a directory under this one. Default `<tmpdir>/ebbrt-vms`. */
  logDir?: string;
  /** VM memory when the allocation does not say, MiB (at least 320: the initramfs unpacks into RAM, and 256 MiB cannot hold it). Default 512. */
  memoryMiB?: number;
  /** The QEMU binary. Default `qemu-system-x86_64` from PATH. */
  qemu?: string;
  /** How long the KVM probe waits for a guest kernel to print its banner, ms. Default 3000. */
  probeTimeoutMs?: number;
  /** Default join deadline of VM natives, ms (TCG boots in seconds, more on a loaded machine). Default 60000. */
  joinTimeoutMs?: number;
  /** Where warnings go (the TCG fallback). Default: a line on stderr. */
  warn?: (message: string) => void;
}

/** Result of {@link probeKvm}. */
export interface KvmProbe {
  works: boolean;
  /** Why not (or what showed it works). */
  reason: string;
  /** How long the probe took, ms. */
  ms: number;
}

/** What the qemu backend reads from an image directory's `image.json` (written by `@ebbrt/native`'s builder). */
export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
  bytes: { kernel: number; initrd: number; total: number; uncompressedInitrd: number };
  hash: string;
}

/**
 * Failure timeout for frontends whose natives are VMs, ms. Under TCG a guest
 * busy booting its cores (each loads the app right after the join) can send
 * its supervisor's heartbeat more than a second late; 5 s keeps it a member.
 */
export const VM_FAILURE_TIMEOUT_MS = 5000;

/** The guest port the native's messenger listens on; the host side is forwarded to it. */
const GUEST_PORT = 7000;
/** QEMU user networking: the guest reaches the host's loopback here. */
const HOST_FROM_GUEST = '10.0.2.2';
/** x86 COMMAND_LINE_SIZE. */
const MAX_CMDLINE = 2048;
/** The kernel hands at most 32 variables to init; keep room for its own (HOME, TERM). */
const MAX_ENV = 24;
const MIN_MEMORY_MIB = 320;

const LOOPBACK_OR_ANY = new Set(['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::']);

function validate(options: QemuBackendOptions): void {
  if (options.accel !== undefined && !['auto', 'kvm', 'tcg'].includes(options.accel)) throw new TypeError(`options.accel must be 'auto', 'kvm' or 'tcg' (got ${JSON.stringify(options.accel)})`);
  for (const key of ['imageDir', 'cacheDir', 'logDir', 'qemu'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key].length === 0)) throw new TypeError(`options.${key} must be a non-empty string`);
  }
  if (options.logDir !== undefined && path.resolve(options.logDir).length > 70) throw new TypeError('options.logDir must be at most 70 characters long: QMP sockets live under it and unix socket paths are limited to 108 bytes');
  if (options.memoryMiB !== undefined && (!Number.isInteger(options.memoryMiB) || options.memoryMiB < MIN_MEMORY_MIB)) throw new TypeError(`options.memoryMiB must be an integer of at least ${MIN_MEMORY_MIB}`);
  for (const key of ['probeTimeoutMs', 'joinTimeoutMs'] as const) {
    if (options[key] !== undefined && (!Number.isInteger(options[key]) || options[key] <= 0)) throw new TypeError(`options.${key} must be a positive integer`);
  }
  if (options.warn !== undefined && typeof options.warn !== 'function') throw new TypeError('options.warn must be a function');
}

/** Path of `@ebbrt/native`'s image builder command (a path, not an import). */
export function resolveImageBuilder(): string {
  return path.join(path.dirname(resolveNativeBoot()), 'image', 'main.js');
}

/** Options of {@link buildNativeImage}. */
export interface BuildImageOptions {
  /** Rebuild even if the inputs did not change. */
  force?: boolean;
  /** Kernel image to boot (default: the builder's, the newest cloud kernel in /boot). */
  kernel?: string;
  /** Let the builder print its one-line summary (where, how big, built or up to date) on stdout. */
  print?: boolean;
}

/**
 * Builds the VM image of the app whose native module is `app` into `outDir`
 * with `@ebbrt/native`'s builder (in a child process); resolves with the
 * image once it is up to date.
 */
export async function buildNativeImage(app: string, outDir: string, options: BuildImageOptions = {}): Promise<VmImage> {
  const args = [resolveImageBuilder(), 'build', app, '--out', outDir, ...(options.print ? [] : ['--json']), ...(options.force ? ['--force'] : []), ...(options.kernel ? ['--kernel', options.kernel] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', options.print ? 'inherit' : 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null));
    child.once('close', resolve);
  });
  if (code !== 0) throw new QemuError('IMAGE_BUILD_FAILED', `building the VM image of ${app} failed: ${stderr.trim().replace(/^ebbrt-image: /, '') || `the builder exited with ${code}`}`);
  if (options.print) return readVmImage(outDir);
  const result = JSON.parse(stdout) as { dir: string; manifest: { kernel: string; initrd: string; bytes: VmImage['bytes']; hash: string } };
  return imageFromManifest(result.dir, result.manifest);
}

function imageFromManifest(dir: string, manifest: { kernel: string; initrd: string; bytes: VmImage['bytes']; hash: string }): VmImage {
  return { dir, kernel: path.join(dir, manifest.kernel), initrd: path.join(dir, manifest.initrd), bytes: manifest.bytes, hash: manifest.hash };
}

/** Reads a prebuilt image directory. */
export async function readVmImage(dir: string): Promise<VmImage> {
  let manifest;
  try {
    manifest = JSON.parse(await readFile(path.join(dir, 'image.json'), 'utf8'));
  } catch (error) {
    throw new QemuError('IMAGE_BUILD_FAILED', `${dir} holds no VM image (image.json missing or unreadable): build one with \`ebbrt image build <app> --out ${dir}\``, { cause: error });
  }
  const image = imageFromManifest(path.resolve(dir), manifest);
  if (!existsSync(image.kernel) || !existsSync(image.initrd)) throw new QemuError('IMAGE_BUILD_FAILED', `the image in ${dir} is incomplete (kernel or initramfs missing): rebuild it with \`ebbrt image build <app> --out ${dir}\``);
  return image;
}

function spawnQemu(qemu: string, args: string[]): ChildProcess {
  return spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve(`spawn failed: ${error.message}`));
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
}

function qemuMissing(qemu: string, error: unknown): QemuError {
  return new QemuError('QEMU_NOT_FOUND', `${qemu} cannot be run (${(error as Error).message}): apt-get install qemu-system-x86 (infra/setup.sh does) or set options.qemu`, { cause: error });
}

/**
 * Does KVM run guests here? Boots `kernel` under KVM with no initramfs and
 * waits for its banner on the serial console: firmware alone runs even where
 * nested virtualisation is broken and the kernel then hangs. Kills the probe
 * VM as soon as it knows, and after `timeoutMs` at the latest.
 */
export async function probeKvm(kernel: string, options: { qemu?: string; timeoutMs?: number } = {}): Promise<KvmProbe> {
  const started = performance.now();
  const done = (works: boolean, reason: string): KvmProbe => ({ works, reason, ms: Math.round(performance.now() - started) });
  if (!existsSync('/dev/kvm')) return done(false, '/dev/kvm does not exist');
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
  } catch {
    return done(false, 'no read/write access to /dev/kvm (join the kvm group)');
  }
  const qemu = options.qemu ?? 'qemu-system-x86_64';
  const timeoutMs = options.timeoutMs ?? 3000;
  const args = ['-M', 'pc', '-accel', 'kvm', '-cpu', 'host', '-m', '128', '-nodefaults', '-display', 'none', '-no-reboot', '-no-user-config', '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1', '-serial', 'stdio'];
  const child = spawnQemu(qemu, args);
  let output = '';
  return new Promise<KvmProbe>((resolve, reject) => {
    const finish = (result: KvmProbe) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(result);
    };
    const timer = setTimeout(() => finish(done(false, `a KVM guest printed no kernel banner within ${timeoutMs} ms (KVM present but not running guests, e.g. nested virtualisation)`)), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      if (output.includes('Linux version')) finish(done(true, 'a KVM guest booted its kernel'));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(qemuMissing(qemu, error));
    });
    child.once('exit', (code, signal) => finish(done(false, `the KVM probe VM exited (${code ?? signal}): ${output.trim().split('\n').slice(-2).join(' / ')}`)));
  });
}

/** A free TCP port on `host` (bound, then released for QEMU to take; a lost race is retried by the caller). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Console logs are kept after a VM ends (for post-mortems) until a later launch finds them this old. */
const KEEP_LOGS_MS = 24 * 60 * 60 * 1000;

/**
 * Removes the run directories of VMs that ended (their QMP socket is removed
 * on exit) and whose console was last written over a day ago; best effort.
 */
async function pruneRunDirs(logRoot: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(logRoot).catch(() => [] as string[])) {
    const dir = path.join(logRoot, name);
    if (existsSync(path.join(dir, 'qmp.sock'))) continue;
    const info = await stat(path.join(dir, 'console.log')).catch(() => stat(dir)).catch(() => undefined);
    if (info && now - info.mtimeMs > KEEP_LOGS_MS) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** A kernel command line value: percent-encoded, so spaces and quotes cannot split it. */
const enc = encodeURIComponent;

/**
 * A minimal QMP client (QEMU's JSON control protocol over a unix socket):
 * greeting, capabilities negotiation, then one command at a time.
 */
class Qmp {
  readonly #socket: net.Socket;
  #buffer = '';
  #waiting: ((reply: { return?: unknown; error?: { desc: string } }) => void)[] = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      for (let nl = this.#buffer.indexOf('\n'); nl >= 0; nl = this.#buffer.indexOf('\n')) {
        const line = this.#buffer.slice(0, nl).trim();
        this.#buffer = this.#buffer.slice(nl + 1);
        if (!line) continue;
        const message = JSON.parse(line) as { return?: unknown; error?: { desc: string }; event?: string; QMP?: unknown };
        // Greetings and asynchronous events are not replies.
        if (message.event !== undefined || message.QMP !== undefined) continue;
        this.#waiting.shift()?.(message);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const waiter of this.#waiting.splice(0)) waiter({ error: { desc: 'QMP connection closed' } });
    });
  }

  /** Connects once the socket exists; `gone` resolves if QEMU exits first. */
  static async connect(socketPath: string, gone: Promise<unknown>, timeoutMs: number): Promise<Qmp | undefined> {
    let exited = false;
    void gone.then(() => (exited = true));
    const deadline = performance.now() + timeoutMs;
    while (!exited && performance.now() < deadline) {
      const socket = await new Promise<net.Socket | undefined>((resolve) => {
        const s = net.connect(socketPath);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (socket) {
        const qmp = new Qmp(socket);
        const reply = await qmp.execute('qmp_capabilities');
        if (!reply.error) return qmp;
        socket.destroy();
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return undefined;
  }

  execute(command: string): Promise<{ return?: unknown; error?: { desc: string } }> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#socket.write(`${JSON.stringify({ execute: command })}\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

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
    const cacheDir = this.#options.cacheDir ?? process.env.EBBRT_IMAGE_CACHE ?? path.join(os.homedir(), '.cache', 'ebbrt', 'images');
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
      if (wanted === 'kvm') throw new QemuError('KVM_UNAVAILABLE', `accel 'kvm' was asked for but KVM does not run guests here: ${probe.reason}; use accel 'auto' or 'tcg'`);
      (this.#options.warn ?? ((m: string) => process.stderr.write(`ebbrt: warning: ${m}\n`)))(`KVM is not usable (${probe.reason}; probed in ${probe.ms} ms): VM natives run under TCG emulation, several times slower`);
      return 'tcg';
    })();
    this.#accel.catch(() => (this.#accel = undefined));
    return this.#accel;
  }

  async launch(spec: LaunchSpec): Promise<LaunchedNode> {
    const memoryMiB = spec.memoryMiB ?? this.#options.memoryMiB ?? 512;
    if (memoryMiB < MIN_MEMORY_MIB) throw new QemuError('VM_CONFIG', `a VM native needs at least ${MIN_MEMORY_MIB} MiB (its initramfs unpacks into RAM); got memoryMiB ${memoryMiB}`);
    // What the kernel command line cannot carry fails here, before an image is built or a VM started.
    this.#cmdline(spec, '127.0.0.1:1');
    const image = await this.image(spec.app);
    const accel = await this.accel(image.kernel);
    const logRoot = path.resolve(this.#options.logDir ?? path.join(os.tmpdir(), 'ebbrt-vms'));
    await mkdir(logRoot, { recursive: true });
    await pruneRunDirs(logRoot);
    const runDir = await mkdtemp(path.join(logRoot, `${spec.allocationId.slice(0, 8)}-`));
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#boot(spec, image, accel, memoryMiB, runDir);
      } catch (error) {
        if (!(error instanceof PortTaken) || attempt === 3) throw error instanceof PortTaken ? new QemuError('VM_START_FAILED', error.message) : error;
      }
    }
  }

  /** The kernel command line: console, then the native's configuration (`ebbrt.*`, read by its boot config), then extra environment. */
  #cmdline(spec: LaunchSpec, advertise: string): string {
    const match = /^(.+):(\d+)$/.exec(spec.frontend);
    if (!match) throw new QemuError('VM_CONFIG', `the frontend address ${spec.frontend} is not host:port`);
    const frontendHost = LOOPBACK_OR_ANY.has(match[1]) ? HOST_FROM_GUEST : match[1];
    const params = [
      // Not `quiet`: the kernel's boot messages cost nothing measurable and make a failed boot's console say where it stopped.
      'console=ttyS0',
      'panic=-1',
      `ebbrt.frontend=${enc(`${frontendHost}:${match[2]}`)}`,
      `ebbrt.secret=${enc(spec.secret)}`,
      `ebbrt.allocation-id=${enc(spec.allocationId)}`,
      `ebbrt.cores=${spec.cores}`,
      'ebbrt.listen-host=0.0.0.0',
      `ebbrt.listen-port=${GUEST_PORT}`,
      `ebbrt.advertise=${enc(advertise)}`,
      // Peers that advertise a loopback or wildcard address (process natives, other VMs' forwards, a frontend bound to 0.0.0.0) are on the host: 10.0.2.2 from inside.
      `ebbrt.host-alias=${enc(['127.0.0.1', 'localhost', '0.0.0.0'].map((host) => `${host}=${HOST_FROM_GUEST}`).join(','))}`,
      'ebbrt.backend=qemu',
    ];
    if (spec.args.length > 0) params.push(`ebbrt.args=${enc(JSON.stringify(spec.args))}`);
    if (spec.env.EBBRT_TLS_CERT !== undefined) throw new QemuError('VM_CONFIG', 'VM natives cannot join a TLS cluster yet: the certificates do not fit on the kernel command line; run the cluster without TLS or use the process backend');
    const env = Object.entries(spec.env);
    if (env.length > MAX_ENV) throw new QemuError('VM_CONFIG', `a VM native takes at most ${MAX_ENV} extra environment variables (the kernel passes at most 32 to init); got ${env.length}`);
    for (const [key, value] of env) {
      // The kernel passes unknown `NAME=value` parameters to init as its environment; quotes protect spaces, nothing protects a quote.
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new QemuError('VM_CONFIG', `environment variable name ${JSON.stringify(key)} cannot travel on a kernel command line: use letters, digits and _`);
      if (/["\n\r\0]/.test(value)) throw new QemuError('VM_CONFIG', `environment variable ${key} holds a double quote or a line break, which a kernel command line cannot carry`);
      params.push(/\s/.test(value) ? `${key}="${value}"` : `${key}=${value}`);
    }
    const cmdline = params.join(' ');
    if (cmdline.length >= MAX_CMDLINE) throw new QemuError('VM_CONFIG', `the kernel command line would be ${cmdline.length} bytes, over the ${MAX_CMDLINE}-byte limit: pass fewer or shorter app arguments or environment variables`);
    return cmdline;
  }

  async #boot(spec: LaunchSpec, image: VmImage, accel: 'kvm' | 'tcg', memoryMiB: number, runDir: string): Promise<LaunchedNode> {
    const frontendHost = /^(.+):\d+$/.exec(spec.frontend)?.[1] ?? '127.0.0.1';
    const hostSide = LOOPBACK_OR_ANY.has(frontendHost) ? '127.0.0.1' : frontendHost;
    const hostPort = await freePort(hostSide);
    const consoleLog = path.join(runDir, 'console.log');
    const qmpSocket = path.join(runDir, 'qmp.sock');
    await rm(qmpSocket, { force: true });
    const args = [
      '-M', 'pc',
      '-accel', accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
      '-cpu', accel === 'kvm' ? 'host' : 'max',
      '-smp', String(spec.cores),
      '-m', String(memoryMiB),
      '-nodefaults', '-no-user-config', '-display', 'none',
      // A guest reboot (a kernel panic with panic=-1) ends the VM instead of booting it again.
      '-no-reboot',
      '-kernel', image.kernel,
      '-initrd', image.initrd,
      '-append', this.#cmdline(spec, `${hostSide}:${hostPort}`),
      '-chardev', `stdio,id=console,signal=off,logfile=${consoleLog},logappend=off`,
      '-serial', 'chardev:console',
      '-netdev', `user,id=net0,hostfwd=tcp:${hostSide}:${hostPort}-:${GUEST_PORT}`,
      '-device', 'virtio-net-pci,netdev=net0',
      '-qmp', `unix:${qmpSocket},server=on,wait=off`,
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
    if (!qmp) {
      child.kill('SIGKILL');
      const status = await exited;
      if (/spawn failed/.test(String(status))) throw qemuMissing(this.#qemu, new Error(String(status)));
      if (/host forwarding rule|Could not set up host forwarding/i.test(captured)) throw new PortTaken(`QEMU could not forward port ${hostPort}: ${captured.trim()}`);
      throw new QemuError('VM_START_FAILED', `${this.#qemu} did not start the VM (exit ${status}): ${captured.trim().slice(-2000) || 'no output'}`);
    }
    void exited.then(() => qmp.close());
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
