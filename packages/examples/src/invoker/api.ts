/**
 * The invoker's REST API on the frontend (node:http): the subset of Apache
 * OpenWhisk's API v1 that the `openwhisk` npm client and `wsk` use for
 * actions and activations, with OpenWhisk's paths, query parameters, status
 * codes and JSON shapes:
 *
 *   GET    /api/v1                                     API info (no auth)
 *   GET    /api/v1/namespaces                          the caller's namespace
 *   GET    /api/v1/namespaces/{ns}/actions             list (skip, limit, count)
 *   PUT    /api/v1/namespaces/{ns}/actions/{name}      create; update with ?overwrite=true
 *   GET    /api/v1/namespaces/{ns}/actions/{name}      get (?code=false omits the source)
 *   DELETE /api/v1/namespaces/{ns}/actions/{name}      delete
 *   POST   /api/v1/namespaces/{ns}/actions/{name}      invoke (?blocking=true, ?result=true)
 *   GET    /api/v1/namespaces/{ns}/activations         list (name, skip, limit, since, upto, docs, count)
 *   GET    /api/v1/namespaces/{ns}/activations/{id}    get; …/result, …/logs
 *
 * Every request but the info carries HTTP basic auth with an API key
 * `uuid:key`, which names its namespace (`_` in a path is the caller's own).
 * A wrong key is 401. A path naming another namespace is 404, exactly as if
 * the entity did not exist: nothing of another namespace is read, listed or
 * run. Errors are OpenWhisk's `{ "error": message, "code": transaction id }`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { summary, type Activation, type ActivationStore } from './activations.js';
import type { Dispatcher } from './dispatch.js';
import { InvokerError, MESSAGES } from './errors.js';
import { NODE_KIND, validEntityName, type ActionStore, type StoredAction } from './store.js';

/** Options of {@link startApi}. */
export interface ApiOptions {
  /** Address to bind. Default `127.0.0.1`. */
  host?: string;
  /** Port to bind; 0 picks a free one. Default 3233 (OpenWhisk standalone's). */
  port?: number;
  /** API keys (`uuid:key`) → the namespace each one owns. */
  keys: ReadonlyMap<string, string>;
  store: ActionStore;
  dispatcher: Dispatcher;
  activations: ActivationStore;
  /** How long a blocking invoke waits before answering 202 with the activation id, ms. Default 60000 (OpenWhisk's). */
  blockingWaitMs?: number;
  /** Resolves once `namespace` has a native to run on (`--isolate tenant` starts its node on first use). Default: it always has. */
  ready?: (namespace: string) => Promise<void>;
  /** Called with unexpected errors (bugs), which are answered 500. */
  onError?: (error: unknown) => void;
}

export interface InvokerApi {
  /** `http://host:port`: what to give the client as `apihost`. */
  readonly apihost: string;
  readonly port: number;
  /** Stops accepting requests and closes every connection. */
  close(): Promise<void>;
}

/** Largest action source accepted by PUT, bytes. */
const MAX_ACTION_BYTES = 10 * 1024 * 1024;
/** Largest invocation payload, bytes (OpenWhisk's 1 MB). */
const MAX_PAYLOAD_BYTES = 1024 * 1024;
const LIST_LIMIT = 200;

const JSON_HEADERS = { 'content-type': 'application/json', 'access-control-allow-origin': '*' };

export async function startApi(options: ApiOptions): Promise<InvokerApi> {
  if (options === null || typeof options !== 'object') throw new TypeError('startApi(options): options must be an object');
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) throw new TypeError('options.port must be an integer in 0..65535');
  if (options.blockingWaitMs !== undefined && (!Number.isInteger(options.blockingWaitMs) || options.blockingWaitMs <= 0)) throw new TypeError('options.blockingWaitMs must be a positive integer (milliseconds)');
  if (!(options.keys instanceof Map) || options.keys.size === 0) throw new TypeError('options.keys must be a non-empty Map of "uuid:key" → namespace');
  const api = new Api(options);
  const server = http.createServer((req, res) => api.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 3233, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    apihost: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

class Api {
  readonly #o: ApiOptions;
  /** `Authorization` header value → namespace, precomputed for the keys' exact encodings. */
  readonly #headers = new Map<string, string>();
  readonly #blockingWaitMs: number;

  constructor(options: ApiOptions) {
    this.#o = options;
    this.#blockingWaitMs = options.blockingWaitMs ?? 60_000;
    for (const [key, namespace] of options.keys) this.#headers.set(`Basic ${Buffer.from(key).toString('base64')}`, namespace);
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#route(req, res).catch((error: unknown) => {
      if (!(error instanceof InvokerError)) this.#o.onError?.(error);
      const status = error instanceof InvokerError ? error.status : 500;
      const message = error instanceof InvokerError ? error.message : 'Internal server error';
      if (res.headersSent) res.destroy();
      else send(res, status, { error: message, code: randomBytes(16).toString('hex') });
      // A request refused before its body was read: drain it, so the connection stays usable.
      req.resume();
    });
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    if (method === 'OPTIONS') {
      res.writeHead(200, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, DELETE, POST, PUT, HEAD',
        'access-control-allow-headers': 'Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent',
      });
      res.end();
      return;
    }
    const parts = path.split('/').filter((p) => p.length > 0);
    if (parts[0] !== 'api' || parts[1] !== 'v1') throw notFound();
    if (parts.length === 2) {
      allow(method, ['GET']);
      send(res, 200, { api_paths: ['/api/v1'], description: 'OpenWhisk-compatible REST API of the ebbrt invoker', runtimes: { nodejs: [{ kind: NODE_KIND, default: true }] } });
      return;
    }
    if (parts[2] !== 'namespaces') throw notFound();
    const namespace = this.#authenticate(req);
    if (parts.length === 3) {
      allow(method, ['GET']);
      send(res, 200, [namespace]);
      return;
    }
    // Another namespace is answered exactly like a missing entity: its contents are never looked at.
    const named = decode(parts[3]);
    if (named !== '_' && named !== namespace) throw notFound();
    const collection = parts[4];
    const rest = parts.slice(5).map(decode);
    if (collection === 'actions') return this.#actions(method, namespace, rest, query, req, res);
    if (collection === 'activations') return this.#activations(method, namespace, rest, query, res);
    if ((collection === 'triggers' || collection === 'rules' || collection === 'packages') && rest.length === 0 && method === 'GET') {
      // Not supported here; empty lists keep `wsk list` working.
      send(res, 200, []);
      return;
    }
    throw notFound();
  }

  #authenticate(req: http.IncomingMessage): string {
    const header = req.headers.authorization;
    const namespace = header === undefined ? undefined : (this.#headers.get(header) ?? this.#decodeAuth(header));
    if (namespace === undefined) throw new InvokerError('INVOKER_UNAUTHORIZED', MESSAGES.unauthorized);
    return namespace;
  }

  #decodeAuth(header: string): string | undefined {
    const match = /^basic\s+(\S+)$/i.exec(header);
    return match ? this.#o.keys.get(Buffer.from(match[1], 'base64').toString('utf8')) : undefined;
  }

  async #actions(method: string, namespace: string, rest: string[], query: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { store } = this.#o;
    if (rest.length === 0) {
      allow(method, ['GET']);
      const actions = store.list(namespace);
      if (flag(query, 'count')) {
        send(res, 200, { actions: actions.length });
        return;
      }
      const skip = integer(query, 'skip', 0, 'actions');
      const limit = integer(query, 'limit', LIST_LIMIT, 'actions') || LIST_LIMIT;
      if (limit > LIST_LIMIT) throw bad(`The value '${limit}' is not in the range of 0 to ${LIST_LIMIT} for actions.`);
      send(res, 200, actions.slice(skip, skip + limit).map((a) => actionJson(a, false)));
      return;
    }
    // `pkg/name` would be an action in a package; this invoker has no packages.
    if (rest.length > 1) throw notFound();
    const name = rest[0];
    if (!validEntityName(name)) throw bad(MESSAGES.entityNameIllegal);
    switch (method) {
      case 'GET': {
        const action = store.get(namespace, name);
        if (!action) throw notFound();
        send(res, 200, actionJson(action, query.get('code') !== 'false'));
        return;
      }
      case 'PUT': {
        const body = await readJson(req, MAX_ACTION_BYTES, undefined);
        const action = await store.put(namespace, name, body, flag(query, 'overwrite'));
        send(res, 200, actionJson(action, true));
        return;
      }
      case 'DELETE': {
        const action = await store.delete(namespace, name);
        send(res, 200, actionJson(action, false));
        return;
      }
      case 'POST':
        return this.#invoke(namespace, name, query, req, res);
      default:
        throw new InvokerError('INVOKER_METHOD_NOT_ALLOWED', 'HTTP method not allowed, supported methods: GET, PUT, DELETE, POST');
    }
  }

  async #invoke(namespace: string, name: string, query: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestedAt = Date.now();
    const action = this.#o.store.get(namespace, name);
    if (!action) throw notFound();
    const payload = await readJson(req, MAX_PAYLOAD_BYTES, {});
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) throw bad('The request content was malformed:\nthe invocation parameters must be a JSON object');
    if (this.#o.ready && !this.#o.dispatcher.hasTargets(namespace)) await this.#o.ready(namespace);
    const started = this.#o.dispatcher.start(action, payload as Record<string, unknown>, requestedAt);
    const headers = { ...JSON_HEADERS, 'x-openwhisk-activation-id': started.activationId };
    if (!flag(query, 'blocking')) {
      send(res, 202, { activationId: started.activationId }, headers);
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const activation = await Promise.race([started.done, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), this.#blockingWaitMs)))]);
    clearTimeout(timer);
    if (activation === undefined) {
      // Still running: the caller polls the activation by id, as with a non-blocking invoke.
      send(res, 202, { activationId: started.activationId }, headers);
      return;
    }
    send(res, httpStatus(activation), flag(query, 'result') ? activation.response.result : activation, headers);
  }

  #activations(method: string, namespace: string, rest: string[], query: URLSearchParams, res: http.ServerResponse): void {
    allow(method, ['GET']);
    const { activations } = this.#o;
    if (rest.length === 0) {
      const filter = {
        name: query.get('name') ?? undefined,
        since: optionalInteger(query, 'since', 'activations'),
        upto: optionalInteger(query, 'upto', 'activations'),
      };
      if (filter.name !== undefined && !validEntityName(filter.name)) throw bad(`Parameter may be a 'simple' name or 'package-name/simple' name: ${filter.name}`);
      if (flag(query, 'count')) {
        if (flag(query, 'docs')) throw bad("The parameter 'docs' is not permitted with 'count'.");
        send(res, 200, { activations: activations.count(namespace, filter) });
        return;
      }
      const limit = integer(query, 'limit', 30, 'activations') || LIST_LIMIT;
      if (limit > LIST_LIMIT) throw bad(`The value '${limit}' is not in the range of 0 to ${LIST_LIMIT} for activations.`);
      const list = activations.list(namespace, { ...filter, skip: integer(query, 'skip', 0, 'activations'), limit });
      send(res, 200, flag(query, 'docs') ? list : list.map(summary));
      return;
    }
    if (rest.length > 2) throw notFound();
    if (!/^[0-9a-f]{32}$/.test(rest[0])) throw bad(MESSAGES.activationIdIllegal);
    const activation = activations.get(namespace, rest[0]);
    if (!activation) throw notFound();
    if (rest.length === 1) send(res, 200, activation);
    else if (rest[1] === 'result') send(res, 200, activation.response);
    else if (rest[1] === 'logs') send(res, 200, { logs: activation.logs });
    else throw notFound();
  }
}

/** HTTP status of a blocking invoke's answer (OpenWhisk's controller: application and developer errors are 502). */
function httpStatus(activation: Activation): number {
  switch (activation.statusCode) {
    case 0:
      return 200;
    case 3:
      return 500;
    default:
      return 502;
  }
}

function actionJson(action: StoredAction, withCode: boolean): Record<string, unknown> {
  const { record } = action;
  const exec = withCode ? { kind: record.exec.kind, code: record.exec.code, binary: false, ...(record.exec.main ? { main: record.exec.main } : {}) } : { kind: record.exec.kind, binary: false };
  return {
    namespace: record.namespace,
    name: record.name,
    version: record.version,
    exec,
    parameters: record.parameters,
    limits: record.limits,
    publish: record.publish,
    annotations: [...record.annotations.filter((a) => a.key !== 'exec'), { key: 'exec', value: record.exec.kind }],
    updated: record.updated,
  };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = JSON_HEADERS): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a JSON body of at most `limit` bytes; an empty body is `empty` (400 when undefined). */
function readJson(req: http.IncomingMessage, limit: number, empty: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit keep draining (the connection stays usable) but keep nothing.
      if (size <= limit) chunks.push(chunk);
    });
    req.once('error', (error) => reject(new InvokerError('INVOKER_BAD_REQUEST', `request body could not be read: ${error.message}`, { cause: error })));
    req.once('end', () => {
      if (size > limit) return reject(new InvokerError('INVOKER_TOO_LARGE', `The request content was malformed:\nrequest entity too large: ${size} > ${limit} bytes.`));
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim().length === 0) {
        if (empty === undefined) return reject(bad('The request content was malformed:\nthe request body is empty; send a JSON object'));
        return resolve(empty);
      }
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        reject(bad(`The request content was malformed:\n${(error as Error).message}`));
      }
    });
  });
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new InvokerError('INVOKER_METHOD_NOT_ALLOWED', `HTTP method not allowed, supported methods: ${methods.join(', ')}`);
}

function flag(query: URLSearchParams, name: string): boolean {
  return query.get(name) === 'true';
}

function integer(query: URLSearchParams, name: string, fallback: number, collection: string): number {
  return optionalInteger(query, name, collection) ?? fallback;
}

function optionalInteger(query: URLSearchParams, name: string, collection: string): number | undefined {
  const raw = query.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw)) throw bad(`The value '${raw}' is not an integer for ${collection}.`);
  return Number(raw);
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw bad(MESSAGES.entityNameIllegal);
  }
}

function notFound(): InvokerError {
  return new InvokerError('INVOKER_NOT_FOUND', MESSAGES.notFound);
}

function bad(message: string): InvokerError {
  return new InvokerError('INVOKER_BAD_REQUEST', message);
}
