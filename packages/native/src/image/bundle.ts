/**
 * Bundles the native runtime and an app's native module for a VM image.
 *
 * The runtime is two programs that must share one copy of every module: the
 * boot entry (supervisor, main thread) starts each core with
 * `new Worker(new URL('./core.js', import.meta.url))`, and each core
 * `import()`s the app's native module at run time. Three separate bundles
 * would give the core and the app two copies of `@ebbrt/ebb-protocol` (two
 * Ebb registries, two runtimes), so the three entries are bundled together
 * with code splitting: `boot.js`, `core.js` and `app.js` side by side, and
 * what they share in `chunks/`, loaded once per thread. The file names are
 * fixed because boot finds `./core.js` beside itself and the init passes
 * `--app app.js`.
 *
 * A package with a compiled addon (a `.node` file, e.g. `isolated-vm`)
 * cannot be bundled: esbuild leaves its imports as they are, and the package
 * ships beside the bundle in the image's `node_modules`, as installed (its
 * JavaScript, JSON and `.node` files; the addons stripped of debug symbols
 * when `strip` is there), where Node resolves it from the bundle's files.
 * Its own dependencies are not shipped: an addon package whose loader
 * requires others fails at load in the VM, naming the missing one.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Plugin } from 'esbuild';
import { ImageBuildError } from './errors.js';
import { APP_DIR } from './init.js';

/** One output file of the bundle, relative to the app directory of the image. */
export interface BundleFile {
  path: string;
  contents: Buffer;
  /** The host file a compiled addon was copied from (the image needs the shared libraries it links). */
  addonSource?: string;
}

/** Options of {@link bundleNative}. */
export interface BundleOptions {
  /** Strip the shipped addons' debug symbols with `strip` (isolated-vm: 25 MB → 1 MB). Default false. */
  strip?: boolean;
}

/** The native package's build output (`dist/`), where the boot entry (node.js) and core.js are; the image names the boot entry boot.js. */
const DIST = fileURLToPath(new URL('../', import.meta.url));

/**
 * `node_modules` directories above the native package: an app outside this
 * package's tree (a folder given by path) still resolves `@ebbrt/native` and
 * `@ebbrt/ebb-protocol` to the copies this builder belongs to.
 */
function nodePaths(): string[] {
  const paths: string[] = [];
  for (let dir = path.dirname(DIST); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules');
    if (existsSync(candidate)) paths.push(candidate);
    if (path.dirname(dir) === dir) return paths;
  }
}

/** `name` of a bare import (`pkg/sub` → `pkg`, `@scope/pkg/sub` → `@scope/pkg`). */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Folder of package `name` as Node resolves it from `from`: the nearest `node_modules/<name>` above it, else in `paths`. */
function packageDir(name: string, from: string, paths: readonly string[]): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  return paths.map((p) => path.join(p, name)).find((candidate) => existsSync(path.join(candidate, 'package.json')));
}

/** The package's files an install needs at run time: JavaScript, JSON and compiled addons, outside nested node_modules. */
function runtimeFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((file) => !file.split(path.sep).includes('node_modules') && /\.(c?js|mjs|json|node)$/.test(file))
    .sort();
}

/** Marks imports of packages holding a `.node` file external, collecting those packages' folders in `found` (name → folder). */
function addonPackages(paths: readonly string[], found: Map<string, string>): Plugin {
  const isAddon = new Map<string, boolean>();
  return {
    name: 'ebbrt-addon-packages',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.path.startsWith('node:') || args.resolveDir === '') return undefined;
        const name = packageName(args.path);
        const dir = packageDir(name, args.resolveDir, paths);
        if (dir === undefined) return undefined;
        if (!isAddon.has(dir))
          isAddon.set(
            dir,
            runtimeFiles(dir).some((file) => file.endsWith('.node')),
          );
        if (!isAddon.get(dir)) return undefined;
        const shipped = found.get(name);
        if (shipped !== undefined && shipped !== dir)
          return { errors: [{ text: `two copies of the addon package ${name} (${shipped} and ${dir}); the image holds one: dedupe them` }] };
        found.set(name, dir);
        return { path: args.path, external: true };
      });
    },
  };
}

const execFileAsync = promisify(execFile);

/** The files of the addon packages in `found`, under `node_modules/` of the bundle. */
async function addonFiles(found: ReadonlyMap<string, string>, strip: boolean): Promise<BundleFile[]> {
  const files: BundleFile[] = [];
  const scratch = strip && found.size > 0 ? await mkdtemp(path.join(os.tmpdir(), 'ebbrt-addon-')) : undefined;
  try {
    for (const [name, dir] of found) {
      for (const file of runtimeFiles(dir)) {
        const source = path.join(dir, file);
        const target = path.posix.join('node_modules', name, file.split(path.sep).join('/'));
        if (!file.endsWith('.node')) {
          files.push({ path: target, contents: readFileSync(source) });
          continue;
        }
        let contents: Buffer;
        if (scratch) {
          const stripped = path.join(scratch, `${files.length}.node`);
          await execFileAsync('strip', ['--strip-unneeded', '-o', stripped, source]);
          contents = await readFile(stripped);
        } else contents = await readFile(source);
        files.push({ path: target, contents, addonSource: source });
      }
    }
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
  return files;
}

/** Bundles boot + core + the app at `app` (path of its native module) into memory, with the addon packages it imports. */
export async function bundleNative(app: string, options: BundleOptions = {}): Promise<BundleFile[]> {
  const { build } = await import('esbuild');
  const addons = new Map<string, string>();
  const paths = nodePaths();
  let result;
  try {
    result = await build({
      entryPoints: { boot: path.join(DIST, 'node.js'), core: path.join(DIST, 'core.js'), app },
      outdir: APP_DIR,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      chunkNames: 'chunks/[name]-[hash]',
      nodePaths: paths,
      plugins: [addonPackages(paths, addons)],
      write: false,
      logLevel: 'silent',
      // CommonJS dependencies bundled into ESM call require() for Node built-ins.
      banner: { js: "import { createRequire as __ebbrtCreateRequire } from 'node:module'; const require = __ebbrtCreateRequire(import.meta.url);" },
    });
  } catch (error) {
    const errors = (error as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`).join('\n  ');
    throw new ImageBuildError(`bundling ${app} with the native runtime failed${detail ? `:\n  ${detail}` : `: ${(error as Error).message}`}`, { cause: error });
  }
  const files: BundleFile[] = result.outputFiles.map((file) => ({ path: path.relative(APP_DIR, file.path), contents: Buffer.from(file.contents) }));
  // The bundle is ESM in .js files.
  files.push({ path: 'package.json', contents: Buffer.from('{"type":"module"}\n') });
  try {
    files.push(...(await addonFiles(addons, options.strip ?? false)));
  } catch (error) {
    throw new ImageBuildError(`shipping the addon packages ${[...addons.keys()].join(', ')} with ${app} failed: ${(error as Error).message}`, { cause: error });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}
