/**
 * The native VM image manifest: `image.json` in an image directory, written
 * by `@ebbrt/native`'s image builder and read back by the builder (is the
 * image up to date?) and by the hosted qemu backend (which files to boot).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The manifest's file name inside an image directory. */
export const IMAGE_MANIFEST_FILE = 'image.json';

/** Bump when the image layout changes, so every existing image rebuilds. */
export const IMAGE_FORMAT = 1;

/** `image.json`: what an image holds and how it was made. */
export interface ImageManifest {
  format: number;
  /** sha256 over every input (bundle, init, binaries, modules, kernel, settings). */
  hash: string;
  /** File names inside the image directory. */
  kernel: string;
  initrd: string;
  kernelRelease: string;
  /** Version of the node binary inside. */
  node: string;
  /** The app's native module the image was built from. */
  app: string;
  /** Kernel modules loaded at boot, in load order. */
  modules: string[];
  bytes: { kernel: number; initrd: number; total: number; uncompressedInitrd: number };
  /** Whether node was stripped of its symbols (binutils' `strip` was found). */
  strippedNode: boolean;
  builtAt: string;
  buildMs: number;
}

/**
 * Checks a parsed manifest: the format this runtime writes, and plain file
 * names and byte counts where a reader relies on them. Throws `TypeError`
 * naming the first bad field.
 */
export function checkImageManifest(value: unknown): ImageManifest {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError(`${IMAGE_MANIFEST_FILE} must hold a JSON object`);
  const m = value as Record<string, unknown>;
  if (m.format !== IMAGE_FORMAT)
    throw new TypeError(`${IMAGE_MANIFEST_FILE} has format ${JSON.stringify(m.format)}, this runtime reads format ${IMAGE_FORMAT}: rebuild the image`);
  for (const key of ['kernel', 'initrd'] as const) {
    const name = m[key];
    if (typeof name !== 'string' || name.length === 0 || name !== path.basename(name))
      throw new TypeError(`${IMAGE_MANIFEST_FILE}: ${key} must be a file name inside the image directory, got ${JSON.stringify(name)}`);
  }
  if (typeof m.hash !== 'string' || m.hash.length === 0) throw new TypeError(`${IMAGE_MANIFEST_FILE}: hash must be a non-empty string`);
  const bytes = m.bytes as Record<string, unknown> | null | undefined;
  for (const key of ['kernel', 'initrd', 'total', 'uncompressedInitrd'] as const) {
    const n = bytes?.[key];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`${IMAGE_MANIFEST_FILE}: bytes.${key} must be a byte count`);
  }
  return value as ImageManifest;
}

/** Reads and checks the manifest of the image in `dir`; throws (with the cause) when it is missing, unreadable or not {@link checkImageManifest}'s format. */
export async function readImageManifest(dir: string): Promise<ImageManifest> {
  const file = path.join(dir, IMAGE_MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TypeError(`${file} is not JSON`, { cause: error });
  }
  return checkImageManifest(parsed);
}
