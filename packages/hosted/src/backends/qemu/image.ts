/** VM images: built by `@ebbrt/native`'s builder (a child process, never an import), read from a directory. */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkImageManifest, readImageManifest, type ImageManifest } from '@ebbrt/ebb-protocol/node';
import { resolveNativeBoot } from '../process.js';
import { QemuError } from './errors.js';

/** A native VM image as the qemu backend boots it: its directory, the absolute paths of its kernel and initramfs, and its manifest. */
export interface VmImage {
  dir: string;
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
}

/** Path of `@ebbrt/native`'s image builder command (a path, not an import). */
export function resolveImageBuilder(): string {
  return path.join(path.dirname(resolveNativeBoot()), 'image', 'main.js');
}

/** Where the qemu backend builds images on demand: `EBBRT_IMAGE_CACHE`, else `~/.cache/ebbrt/images`. */
export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.EBBRT_IMAGE_CACHE ?? path.join(os.homedir(), '.cache', 'ebbrt', 'images');
}

/** One cached image {@link pruneImageCache} removed (or would remove). */
export interface PrunedImage {
  dir: string;
  bytes: number;
  /** `app gone` (its native module no longer exists), `incomplete` (no readable manifest: an interrupted build), or `all`. */
  reason: 'app gone' | 'incomplete' | 'all';
}

/**
 * Removes cached images nothing can use any more: those whose app's native
 * module is gone (an app folder deleted, a temporary checkout) and interrupted
 * builds; with `all`, every cached image (they are rebuilt on demand). With
 * `dryRun`, only says what it would remove. Only entries of the cache's own
 * shape (`<app>-<12 hex>` folders) are touched.
 */
export function pruneImageCache(cacheDir: string, options: { all?: boolean; dryRun?: boolean } = {}): PrunedImage[] {
  if (!existsSync(cacheDir)) return [];
  const pruned: PrunedImage[] = [];
  for (const name of readdirSync(cacheDir).sort()) {
    const dir = path.join(cacheDir, name);
    if (!/-[0-9a-f]{12}$/.test(name) || !statSync(dir).isDirectory()) continue;
    let reason: PrunedImage['reason'] | undefined = options.all ? 'all' : undefined;
    if (!reason) {
      try {
        const manifest = JSON.parse(readFileSync(path.join(dir, 'image.json'), 'utf8')) as { app?: unknown };
        if (typeof manifest.app !== 'string' || !existsSync(manifest.app)) reason = 'app gone';
      } catch {
        reason = 'incomplete';
      }
    }
    if (!reason) continue;
    const bytes = readdirSync(dir).reduce((sum, file) => sum + statSync(path.join(dir, file)).size, 0);
    if (!options.dryRun) rmSync(dir, { recursive: true, force: true });
    pruned.push({ dir, bytes, reason });
  }
  return pruned;
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
  const args = [
    resolveImageBuilder(),
    'build',
    app,
    '--out',
    outDir,
    ...(options.print ? [] : ['--json']),
    ...(options.force ? ['--force'] : []),
    ...(options.kernel ? ['--kernel', options.kernel] : []),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', options.print ? 'inherit' : 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null));
    child.once('close', resolve);
  });
  if (code !== 0)
    throw new QemuError(
      'IMAGE_BUILD_FAILED',
      `building the VM image of ${app} failed: ${stderr.trim().replace(/^ebbrt-image: /, '') || `the builder exited with ${code}`}`,
    );
  if (options.print) return readVmImage(outDir);
  const result = JSON.parse(stdout) as { dir: string; manifest: unknown };
  return vmImage(result.dir, checkImageManifest(result.manifest));
}

function vmImage(dir: string, manifest: ImageManifest): VmImage {
  return { dir, kernel: path.join(dir, manifest.kernel), initrd: path.join(dir, manifest.initrd), manifest };
}

/** Reads a prebuilt image directory. */
export async function readVmImage(dir: string): Promise<VmImage> {
  let manifest;
  try {
    manifest = await readImageManifest(dir);
  } catch (error) {
    throw new QemuError(
      'IMAGE_BUILD_FAILED',
      `${dir} holds no VM image this runtime boots (${(error as Error).message}): build one with \`ebbrt image build <app> --out ${dir}\``,
      { cause: error },
    );
  }
  const image = vmImage(path.resolve(dir), manifest);
  if (!existsSync(image.kernel) || !existsSync(image.initrd))
    throw new QemuError(
      'IMAGE_BUILD_FAILED',
      `the image in ${dir} is incomplete (kernel or initramfs missing): rebuild it with \`ebbrt image build <app> --out ${dir}\``,
    );
  return image;
}
