/**
 * The invoker's REST API on the frontend (node:http): the subset of Apache
 * OpenWhisk's API v1 that the `openwhisk` npm client and `wsk` use, with
 * OpenWhisk's paths, query parameters, status codes and JSON shapes:
 *
 *   GET    /api/v1                                       API info (no auth)
 *   GET    /api/v1/namespaces                            the caller's namespace
 *   GET    /api/v1/namespaces/{ns}/actions               list (skip, limit, count); …/actions/{pkg}/ lists a package's
 *   PUT    /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}  create (code or `exec.kind: "sequence"`); update with ?overwrite=true
 *   GET    /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}  get (?code=false omits the source)
 *   DELETE /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}  delete
 *   POST   /api/v1/namespaces/{ns}/actions/[{pkg}/]{name}  invoke (?blocking=true, ?result=true); through a binding too
 *   GET    /api/v1/namespaces/{ns}/activations           list (name, skip, limit, since, upto, docs, count)
 *   GET    /api/v1/namespaces/{ns}/activations/{id}      get; …/result, …/logs
 *   GET/PUT/DELETE /api/v1/namespaces/{ns}/packages[/{name}]   packages and bindings (`binding`)
 *   GET/PUT/DELETE /api/v1/namespaces/{ns}/triggers[/{name}]   triggers; POST fires one
 *   GET/PUT/DELETE /api/v1/namespaces/{ns}/rules[/{name}]      rules; POST {status} enables/disables one
 *   any    /api/v1/web/{ns}/{pkg|default}/{action}.{json|http|html|text|svg}[/…]  web actions (no auth)
 *
 * Every request but the info and web actions carries HTTP basic auth with
 * an API key `uuid:key`, which names its namespace (`_` in a path is the
 * caller's own). A wrong key is 401. A path naming another namespace is
 * 404, exactly as if the entity did not exist: nothing of another namespace
 * is read, listed or run. What is not supported (feeds, API gateway routes,
 * other runtimes) is a 501 naming it. Errors are OpenWhisk's
 * `{ "error": message, "code": transaction id }`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { summary, type Activation, type ActivationStore } from './activations.js';
import type { Dispatcher } from './dispatch.js';
import {
  bad,
  buildPackage,
  buildRule,
  buildTrigger,
  pathName,
  notImplemented,
  validEntityName,
  type PackageRecord,
  type RuleRecord,
  type TriggerRecord,
} from './entities.js';
import { InvokerError, MESSAGES } from './errors.js';
import type { Flows } from './flows.js';
import { NODE_KIND, type ActionStore, type Records, type Resolved, type StoredAction } from './store.js';
import { WEB_EXTENSIONS, webParams, webResponse } from './web.js';
import { withBundledZip } from './zip.js';

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
  flows: Flows;
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
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535))
    throw new TypeError('options.port must be an integer in 0..65535');
  if (options.blockingWaitMs !== undefined && (!Number.isInteger(options.blockingWaitMs) || options.blockingWaitMs <= 0))
    throw new TypeError('options.blockingWaitMs must be a positive integer (milliseconds)');
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
  readonly #waits: BlockingWaits;
  readonly #namespaces: ReadonlySet<string>;

  constructor(options: ApiOptions) {
    this.#o = options;
    this.#namespaces = new Set(options.keys.values());
    this.#waits = new BlockingWaits(options.blockingWaitMs ?? 60_000);
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
      send(res, 200, {
        api_paths: ['/api/v1'],
        description: 'OpenWhisk-compatible REST API of the ebbrt invoker',
        runtimes: { nodejs: [{ kind: NODE_KIND, default: true }] },
      });
      return;
    }
    if (parts[2] === 'web') return this.#web(method, parts.slice(3).map(decode), query, req, res);
    if (parts[2] !== 'namespaces') throw notFound();
    const namespace = this.#authenticate(req);
    if (parts.length === 3) {
      allow(method, ['GET']);
      send(res, 200, [namespace]);
      return;
    }
    const named = decode(parts[3]);
    if (named === 'whisk.system' && !this.#namespaces.has(named))
      throw notImplemented(
        'the whisk.system namespace (system packages such as alarms, and the feeds they provide)',
        'create triggers without a feed and fire them with POST …/triggers/{name}',
      );
    // Another namespace is answered exactly like a missing entity: its contents are never looked at.
    if (named !== '_' && named !== namespace) throw notFound();
    const collection = parts[4];
    const rest = parts.slice(5).map(decode);
    if (collection === 'actions') return this.#actions(method, namespace, rest, path.endsWith('/'), query, req, res);
    if (collection === 'activations') return this.#activations(method, namespace, rest, query, res);
    if (collection === 'packages' || collection === 'triggers' || collection === 'rules')
      return this.#entities(collection, method, namespace, rest, query, req, res);
    if (collection === 'limits')
      throw notImplemented('the namespace limits API', "the limits are the invoker's --max-actions, --max-code-mb and --max-concurrent");
    throw notFound();
  }

  #authenticate(req: http.IncomingMessage): string {
    const namespace = this.#credential(req);
    if (namespace === undefined) throw new InvokerError('INVOKER_UNAUTHORIZED', MESSAGES.unauthorized);
    return namespace;
  }

  /** The namespace the request's basic auth names, if its key is valid. */
  #credential(req: http.IncomingMessage): string | undefined {
    const header = req.headers.authorization;
    return header === undefined ? undefined : (this.#headers.get(header) ?? this.#decodeAuth(header));
  }

  #decodeAuth(header: string): string | undefined {
    const match = /^basic\s+(\S+)$/i.exec(header);
    return match ? this.#o.keys.get(Buffer.from(match[1], 'base64').toString('utf8')) : undefined;
  }

  async #actions(
    method: string,
    namespace: string,
    rest: string[],
    trailingSlash: boolean,
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    const { store } = this.#o;
    // `…/actions` lists the namespace's own actions, `…/actions/{pkg}/` a package's.
    if (rest.length === 0 || (rest.length === 1 && trailingSlash)) {
      allow(method, ['GET']);
      if (rest.length === 1 && !store.find('packages', namespace, rest[0])) throw notFound();
      const pkg = rest[0] === undefined ? undefined : (store.find('packages', namespace, rest[0])!.record.binding?.name ?? rest[0]);
      return sendList(res, 'actions', store.list('actions', namespace, pkg), query, (a) => actionJson(a, false));
    }
    if (rest.length > 2) throw notFound();
    if (!rest.every(validEntityName)) throw bad(MESSAGES.entityNameIllegal);
    const name = rest.join('/');
    switch (method) {
      case 'GET': {
        const resolved = store.resolve(namespace, name);
        if (!resolved) throw notFound();
        send(res, 200, actionJson(resolved.action, query.get('code') !== 'false'));
        return;
      }
      case 'PUT': {
        const body = await withBundledZip(await readJson(req, MAX_ACTION_BYTES, undefined), MAX_ACTION_BYTES);
        const action = await store.put(namespace, name, body, flag(query, 'overwrite'));
        send(res, 200, actionJson(action, true));
        return;
      }
      case 'DELETE': {
        const action = await store.delete('actions', namespace, name);
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
    const resolved = this.#o.store.resolve(namespace, name);
    if (!resolved) throw notFound();
    const payload = await readJson(req, MAX_PAYLOAD_BYTES, {});
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
      throw bad('The request content was malformed:\nthe invocation parameters must be a JSON object');
    const activation = await this.#run(resolved, payload as Record<string, unknown>, requestedAt, flag(query, 'blocking'));
    const headers = { ...JSON_HEADERS, 'x-openwhisk-activation-id': activation.activationId };
    if (!activation.done) send(res, 202, { activationId: activation.activationId }, headers);
    else send(res, httpStatus(activation.done), flag(query, 'result') ? activation.done.response.result : activation.done, headers);
  }

  /** Starts an invocation; with `blocking`, waits for its activation up to the blocking wait (`done` stays undefined past it: the caller polls by id). */
  async #run(
    resolved: Resolved,
    payload: Record<string, unknown>,
    requestedAt: number,
    blocking: boolean,
  ): Promise<{ activationId: string; done?: Activation }> {
    const { namespace } = resolved.action.record;
    const ready = this.#ready(namespace);
    if (ready) await ready;
    const started = this.#o.flows.invoke(resolved, payload, requestedAt);
    if (!blocking) return { activationId: started.activationId };
    return { activationId: started.activationId, done: await this.#waits.wait(started.done) };
  }

  /** Resolves once `namespace` has a native to run on (under --isolate tenant its node may have to start). */
  #ready(namespace: string): Promise<void> | undefined {
    if (this.#o.ready && !this.#o.dispatcher.hasTargets(namespace)) return this.#o.ready(namespace);
  }

  /** Packages, triggers and rules: list, get, create/update, delete; POST fires a trigger or sets a rule's status. */
  async #entities(
    kind: 'packages' | 'triggers' | 'rules',
    method: string,
    namespace: string,
    rest: string[],
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> {
    const { store } = this.#o;
    const json = (stored: { record: Records[typeof kind] }) => entityJson(store, stored.record);
    if (rest.length === 0) {
      allow(method, ['GET']);
      return sendList(res, kind, store.list(kind, namespace), query, json);
    }
    if (rest.length > 1) throw notFound();
    const name = rest[0];
    if (!validEntityName(name)) throw bad(MESSAGES.entityNameIllegal);
    switch (method) {
      case 'GET': {
        const stored = store.find(kind, namespace, name);
        if (!stored) throw notFound();
        send(res, 200, json(stored));
        return;
      }
      case 'PUT': {
        const body = await readJson(req, MAX_PAYLOAD_BYTES, {});
        const overwrite = flag(query, 'overwrite');
        const stored =
          kind === 'packages'
            ? await store.putEntity(kind, namespace, name, overwrite, (previous) => buildPackage(namespace, name, body, previous))
            : kind === 'triggers'
              ? await store.putEntity(kind, namespace, name, overwrite, (previous) => buildTrigger(namespace, name, body, previous))
              : await store.putEntity(kind, namespace, name, overwrite, (previous) => buildRule(namespace, name, body, previous));
        send(res, 200, json(stored));
        return;
      }
      case 'DELETE':
        send(res, 200, json(await store.delete(kind, namespace, name)));
        return;
      case 'POST': {
        if (kind === 'packages') throw new InvokerError('INVOKER_METHOD_NOT_ALLOWED', 'HTTP method not allowed, supported methods: GET, PUT, DELETE');
        const stored = store.find(kind, namespace, name);
        if (!stored) throw notFound();
        const body = await readJson(req, MAX_PAYLOAD_BYTES, {});
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('The request content was malformed:\nthe body must be a JSON object');
        if (kind === 'rules') {
          const status = (body as { status?: unknown }).status;
          if (status !== 'active' && status !== 'inactive') throw bad('send {"status":"active"} to enable a rule or {"status":"inactive"} to disable it');
          const updated = await store.putEntity('rules', namespace, name, true, (previous) => buildRule(namespace, name, { status }, previous));
          send(res, 200, json(updated));
          return;
        }
        await this.#ready(namespace);
        const activationId = this.#o.flows.fire(stored.record as TriggerRecord, body as Record<string, unknown>);
        if (activationId === undefined) {
          res.writeHead(204, { 'access-control-allow-origin': '*' });
          res.end();
        } else send(res, 202, { activationId }, { ...JSON_HEADERS, 'x-openwhisk-activation-id': activationId });
        return;
      }
      default:
        throw new InvokerError('INVOKER_METHOD_NOT_ALLOWED', 'HTTP method not allowed, supported methods: GET, PUT, DELETE, POST');
    }
  }

  /** A web action: `web/{ns}/{pkg|default}/{action}.{ext}[/…]`, no auth unless the action requires it. */
  async #web(method: string, parts: string[], query: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (parts[0] === 'whisk.system' && parts[1] === 'apimgmt' && !this.#namespaces.has('whisk.system'))
      throw notImplemented('API gateway routes (the routes API)', 'call web actions at /api/v1/web/{namespace}/{package}/{action}.json');
    if (parts.length < 3) throw notFound();
    const [namespace, pkg] = parts;
    const dot = parts[2].lastIndexOf('.');
    const leaf = dot < 0 ? parts[2] : parts[2].slice(0, dot);
    const extension = dot < 0 ? 'http' : parts[2].slice(dot + 1);
    if (!this.#namespaces.has(namespace) || !validEntityName(leaf) || (pkg !== 'default' && !validEntityName(pkg))) throw notFound();
    const resolved = this.#o.store.resolve(namespace, pkg === 'default' ? leaf : `${pkg}/${leaf}`);
    const annotations = resolved ? Object.fromEntries(resolved.action.record.annotations.map((a) => [a.key, a.value])) : {};
    if (!resolved || (annotations['web-export'] !== true && annotations['web-export'] !== 'true')) throw notFound();
    const requireAuth = annotations['require-whisk-auth'];
    if (requireAuth === true && this.#credential(req) !== namespace) throw new InvokerError('INVOKER_UNAUTHORIZED', MESSAGES.unauthorized);
    if ((typeof requireAuth === 'string' || typeof requireAuth === 'number') && req.headers['x-require-whisk-auth'] !== String(requireAuth))
      throw new InvokerError('INVOKER_UNAUTHORIZED', MESSAGES.unauthorized);
    if (!Object.hasOwn(WEB_EXTENSIONS, extension))
      throw bad(`a web action is called with one of the extensions .${Object.keys(WEB_EXTENSIONS).join(', .')}; got .${extension}`);
    const extraPath = parts.slice(3);
    const defined = [...Object.entries(resolved.packageParameters).map(([key, value]) => ({ key, value })), ...resolved.action.record.parameters];
    const payload = webParams({ method, headers: req.headers, query, extraPath, body: await readBody(req, MAX_PAYLOAD_BYTES), annotations, defined });
    const run = await this.#run(resolved, payload, Date.now(), true);
    if (!run.done) {
      send(res, 202, { activationId: run.activationId }, { ...JSON_HEADERS, 'x-openwhisk-activation-id': run.activationId });
      return;
    }
    const answer = webResponse(run.done, extension, extraPath);
    res.writeHead(answer.status, { ...answer.headers, 'content-length': answer.body.length });
    res.end(answer.body);
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
      if (filter.name !== undefined && !(filter.name.split('/').length <= 2 && filter.name.split('/').every(validEntityName)))
        throw bad(`Parameter may be a 'simple' name or 'package-name/simple' name: ${filter.name}`);
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

/**
 * Blocking invokes waiting for their activations. They all wait the same
 * time, so the oldest waiter has the earliest deadline and one timer, armed
 * for it, serves them all (a timer per invoke cost a timer list's creation
 * and removal each time, a few per cent of the frontend's CPU under wrk).
 */
class BlockingWaits {
  readonly #waitMs: number;
  /** Waiting invokes, oldest first (a Set keeps insertion order), each with its deadline and how to end its wait empty-handed. */
  readonly #waiting = new Set<{ deadline: number; expire: () => void }>();
  #timer?: ReturnType<typeof setTimeout>;

  constructor(waitMs: number) {
    this.#waitMs = waitMs;
  }

  /** `done`'s value, or undefined once the wait is over. */
  wait<T>(done: Promise<T>): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const waiter = { deadline: Date.now() + this.#waitMs, expire: () => resolve(undefined) };
      this.#waiting.add(waiter);
      if (this.#timer === undefined) this.#arm();
      done.then(
        (value) => {
          this.#waiting.delete(waiter);
          resolve(value);
        },
        (error: unknown) => {
          this.#waiting.delete(waiter);
          reject(error);
        },
      );
    });
  }

  #arm(): void {
    const oldest = this.#waiting.values().next().value;
    this.#timer = oldest === undefined ? undefined : setTimeout(this.#expire, Math.max(1, oldest.deadline - Date.now()));
  }

  readonly #expire = () => {
    const now = Date.now();
    for (const waiter of this.#waiting) {
      if (waiter.deadline > now) break;
      this.#waiting.delete(waiter);
      waiter.expire();
    }
    this.#arm();
  };
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
  const { kind, code, main, components } = record.exec;
  const exec = components ? { kind, components } : withCode ? { kind, code, binary: false, ...(main ? { main } : {}) } : { kind, binary: false };
  const { path, name } = pathName(record.namespace, record.name);
  return {
    namespace: path,
    name,
    version: record.version,
    exec,
    parameters: record.parameters,
    limits: record.limits,
    publish: record.publish,
    annotations: [...record.annotations.filter((a) => a.key !== 'exec'), { key: 'exec', value: kind }],
    updated: record.updated,
  };
}

/** A package's, trigger's or rule's JSON as OpenWhisk answers it. */
function entityJson(store: ActionStore, record: PackageRecord | TriggerRecord | RuleRecord): Record<string, unknown> {
  const { entity: _entity, ...rest } = record;
  switch (record.entity) {
    case 'package': {
      const held = store.list('actions', record.namespace, record.binding?.name ?? record.name);
      return {
        ...rest,
        binding: record.binding ?? {},
        actions: held.map(({ record: a }) => ({ name: pathName(a.namespace, a.name).name, version: a.version, annotations: a.annotations })),
        feeds: [],
      };
    }
    case 'trigger': {
      const rules = store.list('rules', record.namespace).filter((r) => r.record.trigger === record.name);
      return {
        ...rest,
        limits: {},
        rules: Object.fromEntries(rules.map(({ record: r }) => [`${r.namespace}/${r.name}`, { action: pathName(r.namespace, r.action), status: r.status }])),
      };
    }
    case 'rule':
      return { ...rest, trigger: pathName(record.namespace, record.trigger), action: pathName(record.namespace, record.action) };
  }
}

/** A list answer: `{ <kind>: count }` with ?count=true, else the page `skip`/`limit` asks for. */
function sendList<T>(res: http.ServerResponse, kind: string, all: T[], query: URLSearchParams, json: (item: T) => unknown): void {
  if (flag(query, 'count')) {
    send(res, 200, { [kind]: all.length });
    return;
  }
  const skip = integer(query, 'skip', 0, kind);
  const limit = integer(query, 'limit', LIST_LIMIT, kind) || LIST_LIMIT;
  if (limit > LIST_LIMIT) throw bad(`The value '${limit}' is not in the range of 0 to ${LIST_LIMIT} for ${kind}.`);
  send(res, 200, all.slice(skip, skip + limit).map(json));
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = JSON_HEADERS): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Reads a body of at most `limit` bytes (413 past it). */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
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
      if (size > limit)
        reject(new InvokerError('INVOKER_TOO_LARGE', `The request content was malformed:\nrequest entity too large: ${size} > ${limit} bytes.`));
      else resolve(Buffer.concat(chunks));
    });
  });
}

/** Reads a JSON body of at most `limit` bytes; an empty body is `empty` (400 when undefined). */
async function readJson(req: http.IncomingMessage, limit: number, empty: unknown): Promise<unknown> {
  const text = (await readBody(req, limit)).toString('utf8');
  if (text.trim().length === 0) {
    if (empty === undefined) throw bad('The request content was malformed:\nthe request body is empty; send a JSON object');
    return empty;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw bad(`The request content was malformed:\n${(error as Error).message}`);
  }
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
