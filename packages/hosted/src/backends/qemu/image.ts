/** VM images: built by `@ebbrt/native`'s builder (a child process, never an import), read from a directory. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
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
    throw new QemuError('IMAGE_BUILD_FAILED', `${dir} holds no VM image this runtime boots (${(error as Error).message}): build one with \`ebbrt image build <app> --out ${dir}\``, { cause: error });
  }
  const image = vmImage(path.resolve(dir), manifest);
  if (!existsSync(image.kernel) || !existsSync(image.initrd)) throw new QemuError('IMAGE_BUILD_FAILED', `the image in ${dir} is incomplete (kernel or initramfs missing): rebuild it with \`ebbrt image build <app> --out ${dir}\``);
  return image;
}
