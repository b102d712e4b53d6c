/**
 * Kernel modules for the image: which `.ko` files a set of module names needs
 * and in which order to `insmod` them (dependencies first), read from the
 * installed kernel's `modules.dep`. Pure functions over the file's text.
 */
import { ImageBuildError } from './errors.js';

/** Module name as the kernel spells it: file name without `.ko`, dashes as underscores. */
export function moduleName(modulePath: string): string {
  return (modulePath.split('/').pop() ?? '').replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** `modules.dep` → module path (relative to the modules directory) → the paths it depends on. */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    deps.set(
      line.slice(0, colon).trim(),
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
  }
  return deps;
}

/** What {@link moduleLoadOrder} decided. */
export interface ModulePlan {
  /** Module paths to load, every dependency before its users. */
  load: string[];
  /** Wanted names that are built into the kernel (nothing to load). */
  builtin: string[];
}

/**
 * The module files to load for `wanted` (module names), dependencies first.
 * `builtinText` is `modules.builtin`: a wanted module built into the kernel
 * needs no file. A wanted name in neither list is an {@link ImageBuildError}.
 */
export function moduleLoadOrder(deps: Map<string, string[]>, wanted: readonly string[], builtinText = ''): ModulePlan {
  const byName = new Map<string, string>();
  for (const modulePath of deps.keys()) byName.set(moduleName(modulePath), modulePath);
  const builtinNames = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));
  const load: string[] = [];
  const builtin: string[] = [];
  const placed = new Set<string>();
  const place = (modulePath: string, chain: string[]) => {
    if (placed.has(modulePath)) return;
    if (chain.includes(modulePath)) throw new ImageBuildError(`modules.dep has a dependency cycle: ${[...chain, modulePath].map(moduleName).join(' → ')}`);
    for (const dep of deps.get(modulePath) ?? []) place(dep, [...chain, modulePath]);
    placed.add(modulePath);
    load.push(modulePath);
  };
  for (const name of wanted) {
    const normalized = name.replace(/-/g, '_');
    const modulePath = byName.get(normalized);
    if (modulePath) place(modulePath, []);
    else if (builtinNames.has(normalized)) builtin.push(normalized);
    else
      throw new ImageBuildError(
        `kernel module ${name} is neither in modules.dep nor built in: install a kernel that provides it (infra/setup.sh installs linux-image-cloud-amd64)`,
      );
  }
  return { load, builtin };
}
