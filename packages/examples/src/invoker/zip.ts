/**
 * Zip actions (OpenWhisk's `binary` Node.js actions): a zip of a package —
 * its entry file (`package.json` `main`, else `index.js`) and its
 * `node_modules` — sent base64 in `exec.code`. At create the frontend
 * unpacks it into a private temporary folder and bundles the entry with
 * esbuild into one CommonJS file, which is stored and run as the action's
 * code (its `main` is `exports.main`, or `exec.main`). What cannot be bundled
 * is refused at create with a 400 that says why.
 *
 * The archive is a peer's bytes: entries are limited in number and in
 * unpacked size (checked while inflating, so a zip bomb stops at the limit),
 * names must stay inside the folder (no absolute paths, no `..`), links are
 * not unpacked, and the bundler may read no file outside the folder (an
 * `import "/etc/passwd"` is an error, not code).
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';
import { bad } from './entities.js';
import { InvokerError } from './errors.js';

/** Limits of one archive. */
export interface ZipLimits {
  /** Entries (files and folders). */
  entries: number;
  /** Unpacked bytes, over all files. */
  bytes: number;
}

export const ZIP_LIMITS: Readonly<ZipLimits> = Object.freeze({ entries: 10_000, bytes: 64 * 1024 * 1024 });

/** A zip archive's first bytes (`PK\x03\x04`) in base64: how OpenWhisk tells a zip action's code from source. */
export const ZIP_BASE64_PREFIX = 'UEsDB';

export interface ZipFile {
  name: string;
  data: Buffer;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Inflates on the libuv thread pool, so a large entry does not stall the frontend's event loop. */
const inflate = promisify(inflateRaw);

/** The files of a zip archive (folders and links skipped); rejects with a 400 naming what is wrong with it. */
export async function unzip(archive: Buffer, limits: ZipLimits = ZIP_LIMITS): Promise<ZipFile[]> {
  let eocd = -1;
  for (let i = archive.length - 22; i >= Math.max(0, archive.length - 22 - 0xffff); i--) {
    if (archive.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad('the zip action is not a zip archive (no end of central directory): send the zip file base64-encoded in exec.code');
  const count = archive.readUInt16LE(eocd + 10);
  const size = archive.readUInt32LE(eocd + 12);
  let at = archive.readUInt32LE(eocd + 16);
  if (count === 0xffff || size === 0xffffffff || at === 0xffffffff) throw bad('zip64 archives are not supported: zip the action without zip64');
  if (count > limits.entries) throw bad(`the zip action has ${count} entries, more than ${limits.entries}`);
  if (at + size > eocd) throw bad('the zip action is damaged: its central directory lies outside the archive');
  const files: ZipFile[] = [];
  let unpacked = 0;
  for (let n = 0; n < count; n++) {
    if (at + 46 > eocd || archive.readUInt32LE(at) !== CENTRAL) throw bad('the zip action is damaged: bad central directory entry');
    const method = archive.readUInt16LE(at + 10);
    const compressed = archive.readUInt32LE(at + 20);
    const declared = archive.readUInt32LE(at + 24);
    const nameLength = archive.readUInt16LE(at + 28);
    const next = at + 46 + nameLength + archive.readUInt16LE(at + 30) + archive.readUInt16LE(at + 32);
    const mode = archive.readUInt32LE(at + 38) >>> 16;
    const local = archive.readUInt32LE(at + 42);
    const name = archive.toString('utf8', at + 46, at + 46 + nameLength);
    at = next;
    if (name.endsWith('/') || (mode & S_IFMT) === S_IFLNK) continue;
    if (name.includes('\\') || name.startsWith('/') || name.split('/').some((part) => part === '..' || part === '') || name.includes('\0')) {
      throw bad(`the zip action holds the entry "${name}", whose name leaves the archive's folder`);
    }
    if (local + 30 > archive.length || archive.readUInt32LE(local) !== LOCAL) throw bad(`the zip action is damaged at "${name}"`);
    const start = local + 30 + archive.readUInt16LE(local + 26) + archive.readUInt16LE(local + 28);
    if (start + compressed > archive.length) throw bad(`the zip action is damaged at "${name}": its data lies outside the archive`);
    const raw = archive.subarray(start, start + compressed);
    const room = limits.bytes - unpacked;
    let data: Buffer;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = await inflate(raw, { maxOutputLength: Math.max(1, Math.min(room, declared)) });
      } catch (error) {
        throw bad(
          `the zip action's entry "${name}" does not inflate to its declared ${declared} bytes within the ${limits.bytes}-byte limit: ${(error as Error).message}`,
        );
      }
    } else throw bad(`the zip action's entry "${name}" uses compression method ${method}; only stored and deflated entries are supported`);
    unpacked += data.length;
    if (data.length !== declared || unpacked > limits.bytes)
      throw bad(`the zip action unpacks to more than ${limits.bytes} bytes, or an entry's size is not the one declared ("${name}")`);
    files.push({ name, data });
  }
  return files;
}

/**
 * A PUT body with its zip action (exec `binary`, or code that is a base64
 * zip, of a Node.js kind) replaced by the bundled source; any other body
 * unchanged.
 */
export async function withBundledZip(body: unknown, maxBytes: number): Promise<unknown> {
  const exec = (body as { exec?: unknown } | null)?.exec as Record<string, unknown> | undefined;
  if (exec === null || typeof exec !== 'object' || typeof exec.code !== 'string') return body;
  if (exec.binary !== true && !exec.code.startsWith(ZIP_BASE64_PREFIX)) return body;
  if (exec.kind !== undefined && !(typeof exec.kind === 'string' && /^nodejs(?::[\w.]+)?$/.test(exec.kind))) return body;
  // One bundle at a time: a namespace that sends many zips costs the frontend one esbuild run's worth of memory and CPU.
  const code = bundling.then(() => bundleZip(exec.code as string));
  bundling = code.catch(() => undefined);
  const source = await code;
  if (Buffer.byteLength(source) > maxBytes)
    throw new InvokerError(
      'INVOKER_TOO_LARGE',
      `the zip action bundles to ${Buffer.byteLength(source)} bytes, more than the ${maxBytes} an action's code may have`,
    );
  return { ...(body as object), exec: { ...exec, code: source, binary: false } };
}

let bundling: Promise<unknown> = Promise.resolve();

/** Unpacks a base64 zip action and bundles its entry into one CommonJS source; throws a 400 saying what could not be bundled. */
export async function bundleZip(base64: string): Promise<string> {
  const files = await unzip(Buffer.from(base64, 'base64'));
  const dir = await mkdtemp(path.join(tmpdir(), 'ebbrt-zip-action-'));
  try {
    for (const file of files) {
      const target = path.join(dir, file.name);
      await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await writeFile(target, file.data, { flag: 'wx', mode: 0o600 });
    }
    const entry = entryOf(files);
    const { build } = await import('esbuild');
    const inside = (p: string) => {
      const relative = path.relative(dir, p);
      return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
    };
    let output;
    try {
      output = await build({
        absWorkingDir: dir,
        entryPoints: [path.join(dir, entry)],
        bundle: true,
        write: false,
        platform: 'node',
        format: 'cjs',
        logLevel: 'silent',
        plugins: [
          {
            name: 'confine',
            setup(b) {
              b.onLoad({ filter: /.*/ }, (args) => (inside(args.path) ? undefined : { errors: [{ text: `${args.path} is outside the zip action` }] }));
            },
          },
        ],
      });
    } catch (error) {
      const first = (error as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors?.[0];
      const where = first?.location ? ` (${first.location.file}:${first.location.line})` : '';
      throw bad(
        `the zip action could not be bundled: ${first ? first.text + where : (error as Error).message}; it needs its entry file and every module it requires (node_modules included) in the archive`,
      );
    }
    return output.outputFiles[0].text;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The entry file: `package.json`'s `main`, else `index.js`. */
function entryOf(files: readonly ZipFile[]): string {
  const manifest = files.find((f) => f.name === 'package.json');
  let main = 'index.js';
  if (manifest) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(manifest.data.toString('utf8'));
    } catch (error) {
      throw bad(`the zip action's package.json is not JSON: ${(error as Error).message}`);
    }
    const declared = (parsed as { main?: unknown } | null)?.main;
    if (declared !== undefined) {
      if (typeof declared !== 'string') throw bad('the zip action\'s package.json "main" must be a file name');
      main = path.posix.normalize(declared.replace(/^\.\//, ''));
    }
  }
  const candidates = [main, `${main}.js`, `${main}/index.js`];
  const found = candidates.find((c) => files.some((f) => f.name === c));
  if (!found) throw bad(`the zip action has no entry file ${main}: put index.js at the archive's root, or name the entry in package.json "main"`);
  return found;
}
