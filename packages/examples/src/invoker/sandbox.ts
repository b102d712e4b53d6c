/**
 * The sandbox of one action on one core: a node:vm context of its own, in
 * which the action's source is compiled once and its entry function is
 * called for every invocation that core serves.
 *
 * Isolation. The context's global object has no prototype and holds only
 * what the prelude below defines (`console`, timers, `module`/`exports`): no
 * `require`, no `process`, no Buffer, nothing of the runtime or of another
 * action. No host object ever crosses into the context: parameters enter as
 * JSON text and are parsed inside, results and log lines leave as strings,
 * and the only host function the context can call is a closure the prelude
 * captured, which takes and returns primitives. (A host object inside the
 * context would hand out the host's `Function` through `.constructor`.)
 * node:vm is not a security boundary against hostile code (V8 bugs, CPU
 * and memory exhaustion); this keeps honest actions apart and the runtime's
 * internals out of reach, as OpenWhisk's containers do for one action.
 *
 * Time limits. Every entry into the context (calls of the entry function,
 * and every timer callback the action scheduled) is a `runInContext` with a
 * `timeout`, and the context drains its own microtask queue inside that
 * entry (`microtaskMode: 'afterEvaluate'`), so synchronous loops, loops in
 * promise continuations and loops in timer callbacks are all cut off: a
 * runaway action holds its core for a bounded time, never forever.
 * An activation still pending when its timeout passes (an action that awaits
 * something that never comes) is answered by a host timer. Either way the
 * sandbox is then poisoned, as OpenWhisk destroys a container after a
 * timeout: its owner compiles a fresh one for the next invocation, and the
 * old one is disposed (its timers cleared) once its last activation settled.
 *
 * Batches. The watchdog costs a helper thread per entry (~40 µs p50, ~70 µs
 * mean, far more in the tail on a loaded 2-core machine), so the invocations
 * that reach a core in one turn of its event loop (frames of one socket read)
 * share one entry. Each one started gets a whole `timeout`: the batch stops
 * starting activations once `timeout` has passed and leaves the rest for the
 * next entry, whose watchdog is `2 × timeout`. So a synchronous runaway holds
 * the core for at most twice its timeout; it is the activation started last
 * when the watchdog fires that is failed, and the batch's activations that
 * had not started yet are handed back unrun (to run on a fresh sandbox).
 */
import { types } from 'node:util';
import vm from 'node:vm';
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
  /** Log bytes kept per activation; further lines are replaced by one truncation notice. */
  logLimitBytes: number;
  /** Longest result JSON accepted, bytes. Default 1 MiB (OpenWhisk's limit). */
  resultLimitBytes?: number;
}

/**
 * Runs inside the context, once, before the action's code. Returns the
 * `stage` function the host calls to leave work for the next entry; it only
 * assigns variables, so no action code can run outside a guarded entry.
 * Host calls: host(1, seq, stream, text) log line; host(2, seq, status, json)
 * activation done; host(3, id, repeat, ms, owner) arm timer; host(4, id) clear
 * timer; host(5, seq) activation started.
 */
const PRELUDE = String.raw`(function (host, resultLimit, budget) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, define = Object.defineProperty, StringOf = String;
  const now = Date.now, apply = Reflect.apply, split = String.prototype.split;
  let stagedKind = 0, stagedA = 0, stagedB;
  let current = 0;
  let entry;
  const timers = new Map();
  let nextTimer = 1;
  // An error's stack ends with the runtime's frames (this prelude, node:vm, the host): they are cut off.
  const stackOf = (error) => {
    const stack = error.stack;
    if (typeof stack !== 'string') return StringOf(error);
    const lines = stack.split('\n');
    let end = 0;
    while (end < lines.length && !/invoker-prelude\.js|invoker-entry\.js|node:vm/.test(lines[end])) end++;
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
  const fail = (seq, status, message) => host(2, seq, status, stringify({ error: message }));
  const finish = (seq, value) => {
    if (value === undefined || value === null) return host(2, seq, 0, '{}');
    if (typeof value !== 'object') return fail(seq, 2, ${JSON.stringify(MESSAGES.notADictionary)});
    let json;
    try { json = stringify(value); } catch (e) { return fail(seq, 2, 'The action did not produce a valid JSON response: ' + text(e)); }
    if (typeof json !== 'string') return fail(seq, 2, ${JSON.stringify(MESSAGES.notADictionary)});
    if (json.length > resultLimit) return fail(seq, 2, 'The action produced a response that exceeded the allowed length: ' + json.length + ' > ' + resultLimit + ' bytes.');
    host(2, seq, !Array.isArray(value) && 'error' in value ? 1 : 0, json);
  };
  const rejected = (seq, reason) => {
    let error = reason === undefined ? {} : reason;
    if (reason instanceof Error) { error = { name: reason.name, message: reason.message }; for (const key of Object.keys(reason)) error[key] = reason[key]; }
    try { host(2, seq, 1, stringify({ error })); } catch (e) { fail(seq, 1, text(reason)); }
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
  // A batch: 'seq NUL params NUL seq NUL params…' (JSON text never holds a raw NUL).
  const runBatch = (packed) => {
    const parts = apply(split, packed, ['\u0000']);
    const began = now();
    for (let i = 0; i + 1 < parts.length; i += 2) {
      if (i > 0 && now() - began >= budget) return;
      const seq = +parts[i];
      host(5, seq);
      run(seq, parts[i + 1]);
    }
  };
  const fire = (id) => {
    const timer = timers.get(id);
    if (!timer) return;
    if (!timer.repeat) timers.delete(id);
    current = timer.owner;
    try { timer.fn(...timer.args); } catch (e) { host(1, timer.owner, 1, 'Uncaught ' + text(e)); }
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
  fixed('__ebbrtSetEntry', (found, name) => {
    const exported = globalThis.module && globalThis.module.exports;
    entry = typeof found === 'function' ? found : exported && typeof exported[name] === 'function' ? exported[name] : typeof exported === 'function' ? exported : undefined;
    return typeof entry === 'function' ? '' : 'the action defines no function ' + name + ' (declare function ' + name + '(params) or set module.exports.' + name + ')';
  });
  fixed('__ebbrtEnter', () => {
    const kind = stagedKind, a = stagedA, b = stagedB;
    stagedKind = 0;
    stagedB = undefined;
    if (kind === 1) runBatch(b);
    else if (kind === 2) fire(a);
    else if (kind === 3) return brief(b);
    return '';
  });
  return (kind, a, b) => { stagedKind = kind; stagedA = a; stagedB = b; };
})`;

const ENTER = new vm.Script('__ebbrtEnter()', { filename: 'invoker-entry.js' });
/** What `exec.main` may be: it is spliced into a script, so nothing but an identifier. */
export const ENTRY_NAME = /^[A-Za-z_$][\w$]*$/;
const STAGE_RUN = 1;
const STAGE_FIRE = 2;
const STAGE_DESCRIBE = 3;

/** One activation in a sandbox, from `run` until it settles. */
interface Pending {
  seq: number;
  start: number;
  /** Parameters JSON, until the activation is staged. */
  params?: string;
  /** Has the prelude started it? */
  begun: boolean;
  logs: string[];
  logBytes: number;
  resolve: (outcome: Outcome | undefined) => void;
  timer?: ReturnType<typeof setTimeout>;
}

type Stage = (kind: number, a: number, b?: unknown) => void;

/** A compiled action on one core. Construction compiles and initializes it; see {@link ActionSandbox.initError}. */
export class ActionSandbox {
  /** Time spent creating the context and running the action's top-level code, ms. */
  readonly initMs: number;
  /** Set when initialization failed: the result every invocation then gets (developer error). */
  readonly initError?: string;
  /** Called once when the sandbox is poisoned (an activation timed out): its owner should use a fresh one. */
  onPoisoned?: () => void;
  readonly #context: vm.Context;
  readonly #stage: Stage;
  readonly #timeoutMs: number;
  readonly #logLimit: number;
  readonly #pending = new Map<number, Pending>();
  /** Activations waiting for the next entry. */
  #queue: Pending[] = [];
  #flushing = false;
  /** The activation the prelude started last (blamed when a batch's watchdog fires). */
  #began = 0;
  readonly #timers = new Map<number, { handle: ReturnType<typeof setTimeout>; repeat: boolean; owner: number }>();
  #seq = 0;
  #poisoned = false;
  #retired = false;
  #disposed = false;

  constructor(options: SandboxOptions) {
    const started = performance.now();
    this.#timeoutMs = options.timeoutMs;
    this.#logLimit = options.logLimitBytes;
    this.#context = vm.createContext(Object.create(null), { name: options.filename, codeGeneration: { strings: true, wasm: false }, microtaskMode: 'afterEvaluate' });
    const install = new vm.Script(PRELUDE, { filename: 'invoker-prelude.js' }).runInContext(this.#context) as (host: unknown, limit: number, budget: number) => Stage;
    this.#stage = install((op: number, a: number, b: number, c: unknown, d: number) => this.#host(op, a, b, c, d), options.resultLimitBytes ?? 1024 * 1024, options.timeoutMs);
    this.initError = this.#init(options.code, options.filename, options.main ?? 'main');
    this.initMs = performance.now() - started;
  }

  /** Has an activation timed out in this sandbox? */
  get poisoned(): boolean {
    return this.#poisoned;
  }

  #init(code: string, filename: string, main: string): string | undefined {
    if (!ENTRY_NAME.test(main)) return `Initialization has failed due to: the entry name ${JSON.stringify(main)} is not a JavaScript identifier`;
    try {
      new vm.Script(code, { filename }).runInContext(this.#context, { timeout: this.#timeoutMs });
      // Resolved by a script, so `const main = …` (a global lexical binding) is found as well as `function main`.
      const missing = new vm.Script(`__ebbrtSetEntry(typeof ${main} === 'function' ? ${main} : undefined, ${JSON.stringify(main)})`).runInContext(this.#context, { timeout: this.#timeoutMs }) as string;
      return missing ? `Initialization has failed due to: ${missing}` : undefined;
    } catch (error) {
      if (isTimeout(error)) {
        this.#poisoned = true;
        return MESSAGES.timedOut(this.#timeoutMs, true);
      }
      return `Initialization has failed due to: ${this.#describe(error)}`;
    }
  }

  /**
   * Runs one activation with `params` (a JSON object's text). Resolves with
   * its outcome, or with `undefined` when the sandbox was poisoned before the
   * activation started: the caller runs it on a fresh sandbox.
   */
  run(params: string): Promise<Outcome | undefined> {
    const start = Date.now();
    if (this.initError !== undefined) return Promise.resolve({ status: STATUS.developerError, result: JSON.stringify({ error: this.initError }), logs: [], start, end: Date.now() });
    if (this.#poisoned || this.#disposed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const pending: Pending = { seq: ++this.#seq, start, params, begun: false, logs: [], logBytes: 0, resolve };
      this.#pending.set(pending.seq, pending);
      this.#queue.push(pending);
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(this.#flush);
      }
    });
  }

  /** No new activations will come (the action changed or was deleted): dispose once the last one settled. */
  retire(): void {
    this.#retired = true;
    if (this.#pending.size === 0) this.#dispose();
  }

  /** Runs the queued activations, as few entries as their time budget allows. */
  readonly #flush = (): void => {
    this.#flushing = false;
    while (this.#queue.length > 0) {
      if (this.#poisoned || this.#disposed) {
        for (const pending of this.#queue.splice(0)) this.#abandon(pending);
        return;
      }
      const batch = this.#queue;
      this.#queue = [];
      let packed = '';
      for (const pending of batch) {
        packed += `${packed.length === 0 ? '' : '\0'}${pending.seq}\0${pending.params}`;
      }
      this.#began = 0;
      const ended = this.#enter(STAGE_RUN, 0, packed, 2 * this.#timeoutMs);
      if (ended === 'timeout') this.#timedOut(this.#began);
      else if (ended === 'error') {
        // The prelude itself failed: nothing of this batch is retried, so the loop cannot spin on it.
        for (const pending of batch) if (!pending.begun || pending.seq === this.#began) this.#settle(pending.seq, STATUS.internalError, JSON.stringify({ error: MESSAGES.abnormalRun }));
      }
      for (const pending of batch) {
        if (!this.#pending.has(pending.seq)) continue;
        if (!pending.begun) {
          // Past the batch's budget: the next entry runs it (or, once poisoned, a fresh sandbox).
          this.#queue.push(pending);
        } else if (pending.timer === undefined) {
          pending.timer = setTimeout(() => this.#timedOut(pending.seq), Math.max(1, pending.start + this.#timeoutMs - Date.now()));
        }
      }
    }
  };

  #enter(kind: number, a: number, b: unknown, timeoutMs: number): 'ok' | 'timeout' | 'error' {
    if (this.#disposed) return 'ok';
    this.#stage(kind, a, b);
    try {
      ENTER.runInContext(this.#context, { timeout: timeoutMs });
      return 'ok';
    } catch (error) {
      return isTimeout(error) ? 'timeout' : 'error';
    }
  }

  /** Calls from the prelude; arguments are primitives (the prelude passes nothing else). Never throws into the context. */
  #host(op: number, a: number, b: number, c: unknown, d: number): void {
    try {
      switch (op) {
        case 1:
          this.#log(a, b === 1 ? 'stderr' : 'stdout', String(c));
          return;
        case 2:
          this.#settle(a, b as Outcome['status'], String(c));
          return;
        case 3: {
          const ms = Math.min(Number(c) || 0, 0x7fffffff);
          const fire = () => {
            if (!b) this.#timers.delete(a);
            const ended = this.#enter(STAGE_FIRE, a, undefined, this.#timeoutMs);
            if (ended === 'timeout') this.#timedOut(d);
            else if (ended === 'error') this.#settle(d, STATUS.internalError, JSON.stringify({ error: MESSAGES.abnormalRun }));
          };
          this.#timers.set(a, { handle: b ? setInterval(fire, Math.max(1, ms)) : setTimeout(fire, ms), repeat: b === 1, owner: d });
          return;
        }
        case 5: {
          const pending = this.#pending.get(a);
          if (pending) {
            pending.begun = true;
            pending.params = undefined;
          }
          this.#began = a;
          return;
        }
        case 4: {
          const timer = this.#timers.get(a);
          if (!timer) return;
          this.#timers.delete(a);
          if (timer.repeat) clearInterval(timer.handle);
          else clearTimeout(timer.handle);
          return;
        }
      }
    } catch {
      // A bug here must not surface inside the action as a host object.
    }
  }

  #log(seq: number, stream: string, line: string): void {
    const pending = this.#pending.get(seq);
    if (!pending || pending.logBytes > this.#logLimit) return;
    pending.logBytes += line.length;
    if (pending.logBytes > this.#logLimit) {
      pending.logs.push(`${new Date().toISOString()} stderr: Logs were truncated because the total bytes size exceeds the limit of ${this.#logLimit} bytes.`);
      return;
    }
    pending.logs.push(`${new Date().toISOString()} ${stream}: ${line}`);
  }

  #settle(seq: number, status: Outcome['status'], result: string): void {
    const pending = this.#pending.get(seq);
    if (!pending) return;
    this.#pending.delete(seq);
    if (pending.timer) clearTimeout(pending.timer);
    pending.resolve({ status, result, logs: pending.logs, start: pending.start, end: Date.now() });
    if ((this.#retired || this.#poisoned) && this.#pending.size === 0) this.#dispose();
  }

  /** Hands an activation that never started back to the caller (the sandbox is poisoned). */
  #abandon(pending: Pending): void {
    this.#pending.delete(pending.seq);
    pending.resolve(undefined);
    if (this.#pending.size === 0) this.#dispose();
  }

  #timedOut(seq: number): void {
    if (!this.#poisoned) {
      this.#poisoned = true;
      this.onPoisoned?.();
    }
    this.#settle(seq, STATUS.developerError, JSON.stringify({ error: MESSAGES.timedOut(this.#timeoutMs) }));
  }

  /** Text of a value thrown by action code, computed inside the context (reading it from here could run the action's getters unguarded). */
  #describe(error: unknown): string {
    if (types.isNativeError(error) && !types.isProxy(error) && error instanceof Error) return `${error.name}: ${error.message}`;
    try {
      this.#stage(STAGE_DESCRIBE, 0, error);
      return String(ENTER.runInContext(this.#context, { timeout: this.#timeoutMs }));
    } catch {
      return 'an exception that could not be described';
    }
  }

  #dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const timer of this.#timers.values()) {
      if (timer.repeat) clearInterval(timer.handle);
      else clearTimeout(timer.handle);
    }
    this.#timers.clear();
  }
}

/**
 * The vm watchdog's error. It is built in the context's realm (not an
 * `instanceof Error` here), so only its own data properties are read: a
 * getter the action put on its `Error.prototype` never runs. (Such a getter
 * also keeps node from setting `code`, so the message is checked too.)
 */
function isTimeout(error: unknown): boolean {
  if (!types.isNativeError(error) || types.isProxy(error)) return false;
  const own = (key: string) => Object.getOwnPropertyDescriptor(error, key)?.value as unknown;
  const message = own('message');
  return own('code') === 'ERR_SCRIPT_EXECUTION_TIMEOUT' || (typeof message === 'string' && message.startsWith('Script execution timed out'));
}
