/**
 * The boot entries stay light: what `./tcp` and `./join` load (the ES modules a
 * fresh process resolves for them; built `dist/`), so a native's core listens and
 * its supervisor joins before either has loaded the call path.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';

/** URLs of the ES modules `entry` loads, from a module resolve hook in a fresh process. */
function modulesLoadedBy(entry: string): string[] {
  const hook = `let port; export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) { const result = await next(specifier, context); port.postMessage(result.url); return result; }`;
  const script = `import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const urls = new Set();
port1.on('message', (url) => urls.add(url));
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), { data: { port: port2 }, transferList: [port2] });
await import(${JSON.stringify(entry)});
await new Promise((resolve) => setTimeout(resolve, 50));
console.log(JSON.stringify([...urls]));
port1.close();`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as string[];
}

const CALL_PATH = /msgpackr|\/wire\/codec\.js|\/messenger\/messenger\.js|\/runtime\//;

describe('boot entries', () => {
  test('./tcp loads the TCP transport and the errors, not the protocol stack', () => {
    const loaded = modulesLoadedBy('@ebbrt/ebb-protocol/tcp').filter((url) => url.startsWith('file:'));
    expect(loaded.some((url) => url.endsWith('/messenger/tcp-transport.js'))).toBe(true);
    expect(loaded.filter((url) => !/\/(messenger\/tcp-transport|wire\/errors)\.js$/.test(url))).toEqual([]);
  });

  test('./join loads the handshake and the connection, not the call path (payload codec, messenger, runtime)', () => {
    const loaded = modulesLoadedBy('@ebbrt/ebb-protocol/join');
    expect(loaded.some((url) => url.endsWith('/messenger/connection.js'))).toBe(true);
    expect(loaded.some((url) => url.endsWith('/wire/handshake.js'))).toBe(true);
    expect(loaded.filter((url) => CALL_PATH.test(url) && !url.endsWith('/runtime/local-id-map.js'))).toEqual([]);
  });
});
