/**
 * The native VM image builder (the Lupine approach: Linux configured as a
 * unikernel whose one program is the native runtime). An image is a
 * directory holding:
 *
 * - `vmlinuz`: the kernel (Debian's `linux-image-cloud-amd64` by default),
 * - `initramfs.cpio.gz`: the root file system, unpacked into RAM at boot:
 *   `node` and exactly the shared libraries `ldd` lists for it and for the
 *   compiled addons the app ships, a static busybox, the virtio-net and ACPI
 *   button modules of that kernel (with their dependencies from
 *   `modules.dep`), the init script, and the bundled runtime + app with the
 *   addon packages it imports in `node_modules` (see bundle.ts),
 * - `image.json`: the `ImageManifest` (a contract in `@ebbrt/ebb-protocol/node`), with the content hash of every
 *   input; a build whose inputs hash the same leaves the image as it is.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { IMAGE_FORMAT, IMAGE_MANIFEST_FILE, readImageManifest, type ImageManifest } from '@ebbrt/ebb-protocol/node';
import { bundleNative } from './bundle.js';
import { cpioArchive, type CpioEntry } from './cpio.js';
import { ImageBuildError } from './errors.js';
import { APP_DIR, initScript, powerButtonHandler } from './init.js';
import { moduleLoadOrder, moduleName, parseModulesDep } from './modules.js';

const execFileAsync = promisify(execFile);

/** Kernel modules the VM loads: the virtio NIC QEMU gives it, the ACPI power button (evdev is how acpid reads it), and fw_cfg (where its secrets arrive). */
const MODULES = ['virtio_pci', 'virtio_net', 'button', 'evdev', 'qemu_fw_cfg'];

/** Options of {@link buildImage}. */
export interface ImageBuildOptions {
  /** Path of the app's native module (exports `main(rt, args)`). Required. */
  app: string;
  /** Directory the image is written to (created if missing). Required. */
  outDir: string;
  /** Kernel image. Default: `$EBBRT_KERNEL`, else the newest `/boot/vmlinuz-*-cloud-amd64` (infra/setup.sh installs it), else the newest `/boot/vmlinuz-*`. */
  kernel?: string;
  /** That kernel's modules directory. Default `/lib/modules/<release>`, the release taken from the kernel's file name. */
  modulesDir?: string;
  /** The `node` binary to put in the image. Default: the one running the builder. */
  node?: string;
  /** A statically linked busybox. Default `/bin/busybox` (Debian's busybox-static). */
  busybox?: string;
  /** gzip level of the initramfs, 1 (fast) to 9 (small). Default 6. */
  compressionLevel?: number;
  /** Rebuild even when the inputs did not change. Default false. */
  force?: boolean;
}

/** What {@link buildImage} did. */
export interface ImageBuildResult {
  dir: string;
  manifest: ImageManifest;
  /** False when the image was already up to date. */
  rebuilt: boolean;
}

const KERNEL_FILE = 'vmlinuz';
const INITRD_FILE = 'initramfs.cpio.gz';

/** A file copied into the image from the host. */
interface HostFile {
  /** Absolute path inside the image. */
  target: string;
  source: string;
  size: number;
  mtimeMs: number;
  mode: number;
}

function validate(options: ImageBuildOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('buildImage(options): options must be an object');
  if (typeof options.app !== 'string' || options.app.length === 0) throw new TypeError("options.app must be the path of the app's native module");
  if (typeof options.outDir !== 'string' || options.outDir.length === 0) throw new TypeError('options.outDir must be the directory to write the image to');
  for (const key of ['kernel', 'modulesDir', 'node', 'busybox'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key].length === 0))
      throw new TypeError(`options.${key} must be a non-empty path`);
  }
  const level = options.compressionLevel;
  if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > 9)) throw new TypeError('options.compressionLevel must be an integer in 1..9');
}

/** The kernel to boot: the option, `$EBBRT_KERNEL`, or the newest cloud kernel in /boot. */
async function findKernel(option?: string): Promise<string> {
  const chosen = option ?? process.env.EBBRT_KERNEL;
  if (chosen) return chosen;
  const names = (await readdir('/boot').catch(() => [] as string[])).filter((name) => name.startsWith('vmlinuz-'));
  const cloud = names.filter((name) => name.endsWith('-cloud-amd64'));
  const newest = (cloud.length > 0 ? cloud : names).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1);
  if (!newest)
    throw new ImageBuildError('no kernel in /boot: install linux-image-cloud-amd64 (infra/setup.sh does) or pass a kernel (--kernel PATH, EBBRT_KERNEL)');
  return path.join('/boot', newest);
}

async function hostFile(target: string, source: string, mode: number, what: string): Promise<HostFile> {
  try {
    const resolved = await realpath(source);
    const info = await stat(resolved);
    return { target, source: resolved, size: info.size, mtimeMs: Math.trunc(info.mtimeMs), mode };
  } catch (error) {
    throw new ImageBuildError(`${what} ${source} cannot be read: ${(error as Error).message}`, { cause: error });
  }
}

/** The shared libraries `ldd` lists for `binary` (paths as the dynamic loader looks them up), or 'static'. */
async function sharedLibraries(binary: string): Promise<string[] | 'static'> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('ldd', [binary]));
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    if (/not a dynamic executable|statically linked/.test(output)) return 'static';
    throw new ImageBuildError(`ldd ${binary} failed (is libc-bin installed?): ${output || (error as Error).message}`, { cause: error });
  }
  if (/statically linked/.test(stdout)) return 'static';
  const libraries: string[] = [];
  for (const line of stdout.split('\n')) {
    if (/=>\s*not found/.test(line)) throw new ImageBuildError(`${binary} needs a library the host lacks: ${line.trim()}`);
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (match) libraries.push(match[1]);
  }
  return libraries;
}

async function commandExists(command: string, args: string[]): Promise<boolean> {
  try {
    await execFileAsync(command, args);
    return true;
  } catch {
    return false;
  }
}

async function hasSize(file: string, size: number): Promise<boolean> {
  return stat(file).then(
    (info) => info.size === size,
    () => false,
  );
}

/** Mount points the init needs: kernel file systems, and writable scratch space. */
const MOUNT_POINTS = ['/dev', '/proc', '/sys', '/tmp', '/run'];

/** Every directory above the given image paths and the mount points, parents first (the kernel creates no missing parents). */
function imageDirs(paths: readonly string[]): string[] {
  const dirs = new Set<string>(MOUNT_POINTS);
  for (const p of paths) for (let dir = path.posix.dirname(p); dir !== '/' && dir !== '.'; dir = path.posix.dirname(dir)) dirs.add(dir);
  return [...dirs].sort();
}

async function atomicWrite(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * Builds (or confirms up to date) the VM image of the app at `options.app`.
 * Bundling always runs (well under a second); writing the initramfs (tens of
 * MB through gzip) happens only when an input changed.
 */
export async function buildImage(options: ImageBuildOptions): Promise<ImageBuildResult> {
  validate(options);
  const started = performance.now();
  const outDir = path.resolve(options.outDir);
  const app = path.resolve(options.app);
  if (!existsSync(app)) throw new ImageBuildError(`the app's native module ${app} does not exist (build TypeScript apps first)`);
  const level = options.compressionLevel ?? 6;

  const kernelPath = await findKernel(options.kernel);
  const kernel = await hostFile('/vmlinuz', kernelPath, 0o644, 'the kernel');
  const kernelRelease = path.basename(kernelPath).replace(/^vmlinuz-/, '');
  const modulesDir = options.modulesDir ?? path.join('/lib/modules', kernelRelease);
  let depText: string;
  try {
    depText = await readFile(path.join(modulesDir, 'modules.dep'), 'utf8');
  } catch (error) {
    throw new ImageBuildError(`no modules.dep in ${modulesDir}: the kernel ${kernelPath} needs its modules installed (same package), or pass modulesDir`, {
      cause: error,
    });
  }
  const builtinText = await readFile(path.join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  const plan = moduleLoadOrder(parseModulesDep(depText), MODULES, builtinText);
  const compressed = plan.load.find((m) => !m.endsWith('.ko'));
  if (compressed)
    throw new ImageBuildError(`module ${compressed} is compressed; busybox insmod loads plain .ko files only: use a kernel package with uncompressed modules`);
  const modules = await Promise.all(plan.load.map((m) => hostFile(`/lib/modules/${moduleName(m)}.ko`, path.join(modulesDir, m), 0o644, 'kernel module')));

  const nodeBinary = options.node ?? process.execPath;
  const node = await hostFile('/bin/node', nodeBinary, 0o755, 'the node binary');
  const nodeLibraries = await sharedLibraries(node.source);
  const busyboxPath = options.busybox ?? '/bin/busybox';
  const busybox = await hostFile('/bin/busybox', busyboxPath, 0o755, 'busybox');
  if ((await sharedLibraries(busybox.source)) !== 'static')
    throw new ImageBuildError(`${busyboxPath} is dynamically linked; the image needs a static busybox: apt-get install busybox-static (infra/setup.sh does)`);
  const nodeVersion = (await execFileAsync(node.source, ['--version'])).stdout.trim();
  const strip = await commandExists('strip', ['--version']);

  const bundle = await bundleNative(app, { strip });
  // node's shared libraries and those the shipped addons link (isolated-vm: libstdc++, which node links too).
  const libraryPaths = new Set(nodeLibraries === 'static' ? [] : nodeLibraries);
  for (const file of bundle) {
    const libs = file.addonSource === undefined ? [] : await sharedLibraries(file.addonSource);
    if (libs !== 'static') for (const lib of libs) libraryPaths.add(lib);
  }
  const libraries = await Promise.all([...libraryPaths].map((lib) => hostFile(lib, lib, 0o755, 'shared library')));
  const generated: { target: string; data: Buffer; mode: number }[] = [
    {
      target: '/init',
      data: Buffer.from(initScript({ modules: modules.map((m) => m.target), libraryDirs: [...new Set(libraries.map((l) => path.posix.dirname(l.target)))] })),
      mode: 0o755,
    },
    { target: '/etc/acpi/PWRF/00000080', data: Buffer.from(powerButtonHandler()), mode: 0o755 },
    ...bundle.map((file) => ({ target: path.posix.join(APP_DIR, file.path), data: file.contents, mode: 0o644 })),
  ];
  const copies = [busybox, node, ...libraries, ...modules];

  const hash = createHash('sha256')
    .update(
      JSON.stringify({
        format: IMAGE_FORMAT,
        level,
        strip,
        kernel: [kernel.source, kernel.size, kernel.mtimeMs],
        copies: copies.map((f) => [f.target, f.source, f.size, f.mtimeMs, f.mode]),
        generated: generated.map((g) => [g.target, g.mode, createHash('sha256').update(g.data).digest('hex')]),
      }),
    )
    .digest('hex');

  const kernelOut = path.join(outDir, KERNEL_FILE);
  const initrdOut = path.join(outDir, INITRD_FILE);
  // No manifest, an unreadable one or another format: build afresh.
  const previous = await readImageManifest(outDir).catch(() => undefined);
  if (!options.force && previous?.hash === hash && (await hasSize(kernelOut, previous.bytes.kernel)) && (await hasSize(initrdOut, previous.bytes.initrd))) {
    return { dir: outDir, manifest: previous, rebuilt: false };
  }

  await mkdir(outDir, { recursive: true });
  const tmp = (name: string) => path.join(outDir, `.${name}.${process.pid}.tmp`);
  const strippedNode = tmp('node');
  try {
    if (strip) await execFileAsync('strip', ['-o', strippedNode, node.source]);
    const nodeSource = strip ? { ...node, source: strippedNode, size: (await stat(strippedNode)).size } : node;
    const entries: CpioEntry[] = [
      ...imageDirs([...copies, ...generated].map((f) => f.target)).map((dir): CpioEntry => ({ type: 'dir', path: dir })),
      // The kernel opens /dev/console for PID 1's stdio before any devtmpfs is mounted.
      { type: 'char', path: '/dev/console', major: 5, minor: 1 },
      ...[busybox, nodeSource, ...libraries, ...modules].map(
        (f): CpioEntry => ({ type: 'copy', path: f.target, source: f.source, size: f.size, mode: f.mode }),
      ),
      ...generated.map((g): CpioEntry => ({ type: 'file', path: g.target, data: g.data, mode: g.mode })),
    ];
    let uncompressed = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        uncompressed += chunk.length;
        done(null, chunk);
      },
    });
    const initrdTmp = tmp('initrd');
    await pipeline(Readable.from(cpioArchive(entries)), count, createGzip({ level }), createWriteStream(initrdTmp));
    await rename(initrdTmp, initrdOut);
    const kernelTmp = tmp('kernel');
    await copyFile(kernel.source, kernelTmp);
    await rename(kernelTmp, kernelOut);
    const initrdBytes = (await stat(initrdOut)).size;
    const manifest: ImageManifest = {
      format: IMAGE_FORMAT,
      hash,
      kernel: KERNEL_FILE,
      initrd: INITRD_FILE,
      kernelRelease,
      node: nodeVersion,
      app,
      modules: plan.load.map(moduleName),
      bytes: { kernel: kernel.size, initrd: initrdBytes, total: kernel.size + initrdBytes, uncompressedInitrd: uncompressed },
      strippedNode: strip,
      builtAt: new Date().toISOString(),
      buildMs: Math.round(performance.now() - started),
    };
    await atomicWrite(path.join(outDir, IMAGE_MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    return { dir: outDir, manifest, rebuilt: true };
  } catch (error) {
    if (error instanceof ImageBuildError) throw error;
    throw new ImageBuildError(`writing the image to ${outDir} failed: ${(error as Error).message}`, { cause: error });
  } finally {
    await Promise.all(['node', 'initrd', 'kernel'].map((name) => rm(tmp(name), { force: true })));
  }
}
