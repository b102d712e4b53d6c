/**
 * The sandbox of one action on one core: a V8 isolate of its own
 * (`isolated-vm`), in which the action's source is compiled once and its
 * entry function is called for every invocation that core serves.
 *
 * Isolation. The isolate has its own heap and its own built-ins: no object
 * of the core's realm exists in it, so no `.constructor` chain, stack-trace
 * hook, failed `import()` or polluted prototype can reach the host's
 * `Function`, `process` or `require` (a `node:vm` context shares one heap
 * and hands host objects out through exactly such paths). The isolate's
 * global holds only what the prelude below defines (`console`, timers,
 * `module`/`exports`). Parameters enter as JSON text and are parsed inside;
 * results and log lines leave as strings; the one host function the
 * isolate can call takes and returns primitives (isolated-vm copies
 * whatever is passed). What an isolate does not give: protection from V8
 * bugs or from Spectre-class side channels between isolates of one
 * process; the tenant node and VM natives are the layers for those.
 *
 * Limits. The isolate's heap is capped at the action's memory limit: past
 * it the isolate is disposed and its activations fail with OpenWhisk's
 * "exhausted its memory" result, while the core and the other actions go
 * on. Every entry into the isolate (an activation's call of the entry
 * function, a timer callback it scheduled) runs with a deadline equal to
 * what is left of the owning activation's timeout, promise continuations
 * included (isolated-vm drains the microtask queue inside the entry); so a
 * synchronous runaway is cut at the action's timeout, not later. An
 * activation still pending when its timeout passes (it awaits something
 * that never comes) is answered by a host timer. Either way the sandbox is
 * then poisoned, as OpenWhisk destroys a container after a timeout: its
 * owner compiles a fresh one for the next invocation, and the isolate is
 * disposed once its last activation settled. Timers an activation started
 * are cleared when it settles, as OpenWhisk pauses a container between
 * activations: nothing an action leaves behind runs after its answer.
 */
import ivm from 'isolated-vm';
import { MESSAGES } from './errors.js';

/** Activation status codes, as OpenWhisk numbers them (`response.statusCode`). */
export const STATUS = { success: 0, applicationError: 1, developerError: 2, internalError: 3 } as const;
export type StatusCode = (typeof STATUS)[keyof typeof STATUS];
/** `response.status` strings, by status code. */
export const STATUS_NAMES = ['success', 'application error', 'action developer error', 'whisk internal error'] as const;

/** How one activation ended on a core. */
export interface Outcome {
  status: StatusCode;
  /** The result object, as JSON text. */
  result: string;
  /** Log lines: `<ISO time> stdout|stderr: <text>`. */
  logs: string[];
  /** When the activation started and ended on the core, ms since the epoch. */
  start: number;
  end: number;
}

/** Options of {@link ActionSandbox}. */
export interface SandboxOptions {
  /** The action's JavaScript source. */
  code: string;
  /** Name of the entry function (a global function or a `module.exports` member). Default `main`. */
  main?: string;
  /** Shown in stack traces, e.g. `guest/hello.js`. */
  filename: string;
  /** Time limit of one activation (and of initialization), ms. */
  timeoutMs: number;
  /** Log bytes (UTF-8) kept per activation; further lines are replaced by one truncation notice. */
  logLimitBytes: number;
  /** Longest result JSON accepted, UTF-8 bytes. Default 1 MiB (OpenWhisk's limit). */
  resultLimitBytes?: number;
  /** Heap limit of the action's isolate, MB (isolated-vm's minimum is 8). Default 256. */
  memoryMb?: number;
}

/**
 * Runs inside the isolate, once, before the action's code. Evaluates to the
 * functions the host enters the isolate through. Host calls (all arguments
 * primitives): host(1, seq, stream, text) log line; host(2, seq, status,
 * json) activation done; host(3, id, repeat, ms, owner) arm timer;
 * host(4, id) clear timer.
 */
const PRELUDE = String.raw`(function (host) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, define = Object.defineProperty, StringOf = String;
  let current = 0;
  let entry;
  const timers = new Map();
  let nextTimer = 1;
  // An error's stack ends with the prelude's frames: they are cut off.
  const stackOf = (error) => {
    const stack = error.stack;
    if (typeof stack !== 'string') return StringOf(error);
    const lines = stack.split('\n');
    let end = 0;
    while (end < lines.length && !/invoker-prelude\.js/.test(lines[end])) end++;
    return lines.slice(0, end).join('\n');
  };
  const text = (value) => {
    if (typeof value === 'string') return value;
    if (value instanceof Error) return stackOf(value);
    if (value !== null && typeof value === 'object') { try { return stringify(value); } catch (e) { return StringOf(value); } }
    return StringOf(value);
  };
  const brief = (value) => (value instanceof Error ? value.name + ': ' + value.message : text(value));
  const log = (stream) => (...args) => { let line = ''; for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + text(args[i]); host(1, current, stream, line); };
  const consoleObject = { log: log(0), info: log(0), debug: log(0), trace: log(0), warn: log(1), error: log(1) };
  const schedule = (repeat) => (fn, ms, ...args) => {
    if (typeof fn !== 'function') throw new TypeError('the callback must be a function');
    const id = nextTimer++;
    timers.set(id, { fn, args, owner: current, repeat });
    host(3, id, repeat ? 1 : 0, Math.max(0, +ms || 0), current);
    return id;
  };
  const cancel = (id) => { if (timers.delete(id)) host(4, id); };
  // The activation's timers go with it (the host clears its side of them too).
  const done = (seq, status, json) => { for (const [id, timer] of timers) if (timer.owner === seq) timers.delete(id); host(2, seq, status, json); };
  const fail = (seq, status, message) => done(seq, status, stringify({ error: message }));
  const finish = (seq, value) => {
    if (value === undefined || value === null) return done(seq, 0, '{}');
    if (typeof value !== 'object') return fail(seq, 2, ${JSON.stringify(MESSAGES.notADictionary)});
    let json;
    try { json = stringify(value); } catch (e) { return fail(seq, 2, 'The action did not produce a valid JSON response: ' + text(e)); }
    if (typeof json !== 'string') return fail(seq, 2, ${JSON.stringify(MESSAGES.notADictionary)});
    done(seq, !Array.isArray(value) && 'error' in value ? 1 : 0, json);
  };
  const rejected = (seq, reason) => {
    let error = reason === undefined ? {} : reason;
    if (reason instanceof Error) { error = { name: reason.name, message: reason.message }; for (const key of Object.keys(reason)) error[key] = reason[key]; }
    let json;
    try { json = stringify({ error }); } catch (e) { return fail(seq, 1, text(reason)); }
    done(seq, 1, json);
  };
  const run = (seq, json) => {
    current = seq;
    let result;
    try { result = entry(parse(json)); } catch (e) { return fail(seq, 2, 'An error has occurred: ' + brief(e)); }
    try {
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') Promise.resolve(result).then((v) => finish(seq, v), (e) => rejected(seq, e));
      else finish(seq, result);
    } catch (e) { fail(seq, 2, 'An error has occurred: ' + brief(e)); }
  };
  const fire = (id) => {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    current = timer.owner;
    try { timer.fn(...timer.args); } catch (e) { host(1, timer.owner, 1, 'Uncaught ' + text(e)); }
  };
  const setEntry = (found, name) => {
    const exported = globalThis.module && globalThis.module.exports;
    entry = typeof found === 'function' ? found : exported && typeof exported[name] === 'function' ? exported[name] : typeof exported === 'function' ? exported : undefined;
    return typeof entry === 'function' ? '' : 'the action defines no function ' + name + ' (declare function ' + name + '(params) or set module.exports.' + name + ')';
  };
  const fixed = (name, value) => define(globalThis, name, { value, writable: false, enumerable: false, configurable: false });
  fixed('console', consoleObject);
  fixed('setTimeout', schedule(false));
  fixed('setInterval', schedule(true));
  fixed('setImmediate', (fn, ...args) => schedule(false)(fn, 0, ...args));
  fixed('clearTimeout', cancel);
  fixed('clearInterval', cancel);
  fixed('clearImmediate', cancel);
  fixed('queueMicrotask', (fn) => { Promise.resolve().then(fn); });
  const moduleObject = { exports: {} };
  globalThis.module = moduleObject;
  globalThis.exports = moduleObject.exports;
  return { run, fire, setEntry, describe: brief };
})`;

/** What `exec.main` may be: it is spliced into a script, so nothing but an identifier. */
export const ENTRY_NAME = /^[A-Za-z_$][\w$]*$/;
const DEFAULT_MEMORY_MB = 256;
/** isolated-vm refuses smaller heaps. */
const MIN_MEMORY_MB = 8;

/** One activation in a sandbox, from `run` until it settles. */
interface Pending {
  seq: number;
  start: number;
  logs: string[];
  logBytes: number;
  resolve: (outcome: Outcome | undefined) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/** The prelude's functions, as references into the isolate. */
interface Entries {
  run: ivm.Reference<(seq: number, json: string) => void>;
  fire: ivm.Reference<(id: number) => void>;
  setEntry: ivm.Reference<(found: unknown, name: string) => string>;
}

/** How an entry into the isolate ended. */
type Ended = 'ok' | 'timeout' | 'memory' | 'error';

/** A compiled action on one core. Construction compiles and initializes it; see {@link ActionSandbox.initError}. */
export class ActionSandbox {
  /** Time spent creating the isolate and running the action's top-level code, ms. */
  readonly initMs: number;
  /** Set when initialization failed: the result every invocation then gets (developer error). */
  readonly initError?: string;
  /** Called once when the sandbox is poisoned (an activation timed out or exhausted memory): its owner should use a fresh one. */
  onPoisoned?: () => void;
  readonly #isolate: ivm.Isolate;
  readonly #context: ivm.Context;
  #entries?: Entries;
  readonly #timeoutMs: number;
  readonly #logLimit: number;
  readonly #resultLimit: number;
  readonly #memoryMb: number;
  readonly #pending = new Map<number, Pending>();
  readonly #timers = new Map<number, { handle: ReturnType<typeof setTimeout>; repeat: boolean; owner: number }>();
  #seq = 0;
  #poisoned = false;
  #retired = false;
  #disposed = false;

  constructor(options: SandboxOptions) {
    const started = performance.now();
    this.#timeoutMs = options.timeoutMs;
    this.#logLimit = options.logLimitBytes;
    this.#resultLimit = options.resultLimitBytes ?? 1024 * 1024;
    this.#memoryMb = Math.max(MIN_MEMORY_MB, options.memoryMb ?? DEFAULT_MEMORY_MB);
    this.#isolate = new ivm.Isolate({ memoryLimit: this.#memoryMb });
    this.#context = this.#isolate.createContextSync();
    this.initError = this.#init(options.code, options.filename, options.main ?? 'main');
    this.initMs = performance.now() - started;
  }

  /** Has an activation timed out or exhausted memory in this sandbox? */
  get poisoned(): boolean {
    return this.#poisoned;
  }

  #init(code: string, filename: string, main: string): string | undefined {
    if (!ENTRY_NAME.test(main)) return `Initialization has failed due to: the entry name ${JSON.stringify(main)} is not a JavaScript identifier`;
    const host = new ivm.Callback((op: unknown, a: unknown, b: unknown, c: unknown, d: unknown) => this.#host(Number(op), Number(a), Number(b), c, Number(d)));
    const prelude = this.#isolate.compileScriptSync(PRELUDE, { filename: 'invoker-prelude.js' }).runSync(this.#context, { reference: true }) as ivm.Reference<
      (host: unknown) => unknown
    >;
    const entries = prelude.applySync(undefined, [host], { result: { reference: true } }) as ivm.Reference<Record<string, unknown>>;
    const get = <T>(name: string) => entries.getSync(name, { reference: true }) as ivm.Reference<T>;
    this.#entries = { run: get('run'), fire: get('fire'), setEntry: get('setEntry') };
    try {
      this.#isolate.compileScriptSync(code, { filename }).runSync(this.#context, { timeout: this.#timeoutMs });
      // Resolved by a script, so `const main = …` (a global lexical binding) is found as well as `function main`.
      const found = this.#context.evalSync(`typeof ${main} === 'function' ? ${main} : undefined`, {
        reference: true,
        timeout: this.#timeoutMs,
      }) as ivm.Reference<unknown>;
      const missing = this.#entries.setEntry.applySync(undefined, [found.derefInto(), main], { timeout: this.#timeoutMs }) as string;
      return missing ? `Initialization has failed due to: ${missing}` : undefined;
    } catch (error) {
      const ended = this.#classify(error);
      if (ended === 'timeout') {
        this.#poison();
        return MESSAGES.timedOut(this.#timeoutMs, true);
      }
      if (ended === 'memory') {
        this.#poison();
        return MESSAGES.memoryExhausted;
      }
      return `Initialization has failed due to: ${describe(error)}`;
    }
  }

  /**
   * Runs one activation with `params` (a JSON object's text). Resolves with
   * its outcome, or with `undefined` when the sandbox was poisoned before the
   * activation started: the caller runs it on a fresh sandbox.
   */
  run(params: string): Promise<Outcome | undefined> {
    const start = Date.now();
    if (this.initError !== undefined)
      return Promise.resolve({ status: STATUS.developerError, result: JSON.stringify({ error: this.initError }), logs: [], start, end: Date.now() });
    if (this.#poisoned || this.#disposed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const pending: Pending = { seq: ++this.#seq, start, logs: [], logBytes: 0, resolve };
      this.#pending.set(pending.seq, pending);
      const ended = this.#enter(() => this.#entries!.run.applySync(undefined, [pending.seq, params], { timeout: this.#timeoutMs }));
      this.#ended(ended, pending.seq);
      if (this.#pending.has(pending.seq)) pending.timer = setTimeout(() => this.#timedOut(pending.seq), Math.max(1, start + this.#timeoutMs - Date.now()));
    });
  }

  /** No new activations will come (the action changed or was deleted): dispose once the last one settled. */
  retire(): void {
    this.#retired = true;
    if (this.#pending.size === 0) this.#dispose();
  }

  #enter(call: () => unknown): Ended {
    if (this.#disposed) return 'ok';
    try {
      call();
      return 'ok';
    } catch (error) {
      return this.#classify(error);
    }
  }

  /** Acts on how an entry made for activation `seq` ended. */
  #ended(ended: Ended, seq: number): void {
    if (ended === 'timeout') this.#timedOut(seq);
    else if (ended === 'memory') this.#exhausted();
    else if (ended === 'error') this.#settle(seq, STATUS.internalError, JSON.stringify({ error: MESSAGES.abnormalRun }));
  }

  /**
   * isolated-vm's own errors, told apart by message (they carry no code).
   * Anything the action throws is caught by the prelude, so what reaches
   * here comes from isolated-vm or from a broken prelude.
   */
  #classify(error: unknown): Ended {
    if (this.#isolate.isDisposed) return 'memory';
    const message = error instanceof Error ? error.message : '';
    if (message.startsWith('Script execution timed out')) return 'timeout';
    if (message.includes('memory limit')) return 'memory';
    return 'error';
  }

  /** Calls from the prelude; arguments are primitives (the prelude passes nothing else). Never throws into the isolate. */
  #host(op: number, a: number, b: number, c: unknown, d: number): void {
    try {
      switch (op) {
        case 1:
          this.#log(a, b === 1 ? 'stderr' : 'stdout', String(c));
          return;
        case 2:
          this.#settle(a, b as StatusCode, String(c));
          return;
        case 3: {
          const ms = Math.min(Number(c) || 0, 0x7fffffff);
          const fire = () => {
            if (!b) this.#timers.delete(a);
            const owner = this.#pending.get(d);
            if (!owner) return;
            const left = Math.max(1, owner.start + this.#timeoutMs - Date.now());
            this.#ended(
              this.#enter(() => this.#entries!.fire.applySync(undefined, [a], { timeout: left })),
              d,
            );
          };
          this.#timers.set(a, { handle: b ? setInterval(fire, Math.max(1, ms)) : setTimeout(fire, ms), repeat: b === 1, owner: d });
          return;
        }
        case 4:
          this.#clearTimer(a);
          return;
      }
    } catch {
      // A bug here must not surface inside the isolate.
    }
  }

  #clearTimer(id: number): void {
    const timer = this.#timers.get(id);
    if (!timer) return;
    this.#timers.delete(id);
    if (timer.repeat) clearInterval(timer.handle);
    else clearTimeout(timer.handle);
  }

  /** Keeps a log line while the activation's budget lasts; the budget counts whole stored lines (time stamp included), so many tiny lines cannot outgrow it. */
  #log(seq: number, stream: string, line: string): void {
    const pending = this.#pending.get(seq);
    if (!pending || pending.logBytes > this.#logLimit) return;
    const stored = `${new Date().toISOString()} ${stream}: ${line}`;
    pending.logBytes += Buffer.byteLength(stored);
    if (pending.logBytes > this.#logLimit) {
      pending.logs.push(`${new Date().toISOString()} stderr: ${MESSAGES.truncatedLogs(this.#logLimit)}`);
      return;
    }
    pending.logs.push(stored);
  }

  #settle(seq: number, status: StatusCode, result: string): void {
    const pending = this.#pending.get(seq);
    if (!pending) return;
    this.#pending.delete(seq);
    if (pending.timer) clearTimeout(pending.timer);
    for (const [id, timer] of this.#timers) if (timer.owner === seq) this.#clearTimer(id);
    const bytes = Buffer.byteLength(result);
    if (bytes > this.#resultLimit) {
      status = STATUS.developerError;
      result = JSON.stringify({ error: MESSAGES.truncatedResponse(bytes, this.#resultLimit) });
    }
    pending.resolve({ status, result, logs: pending.logs, start: pending.start, end: Date.now() });
    if ((this.#retired || this.#poisoned) && this.#pending.size === 0) this.#dispose();
  }

  #poison(): void {
    if (this.#poisoned) return;
    this.#poisoned = true;
    this.onPoisoned?.();
  }

  #timedOut(seq: number): void {
    this.#poison();
    this.#settle(seq, STATUS.developerError, JSON.stringify({ error: MESSAGES.timedOut(this.#timeoutMs) }));
  }

  /** The isolate went past its heap limit and isolated-vm disposed it: every activation in it is lost. */
  #exhausted(): void {
    this.#poison();
    for (const seq of [...this.#pending.keys()]) this.#settle(seq, STATUS.developerError, JSON.stringify({ error: MESSAGES.memoryExhausted }));
    this.#dispose();
  }

  #dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const id of [...this.#timers.keys()]) this.#clearTimer(id);
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
  }
}

/** Text of an error isolated-vm copied out of the isolate (a plain host copy: reading it runs no action code). */
function describe(error: unknown): string {
  try {
    if (error instanceof Error) return `${error.name}: ${error.message}`;
    return String(error);
  } catch {
    return 'an exception that could not be described';
  }
}
