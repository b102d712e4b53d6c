/**
 * Web actions (OpenWhisk's `web-export` annotation): what an HTTP request to
 * `/api/v1/web/{ns}/{pkg}/{action}.{ext}` turns into as the action's
 * parameters (OpenWhisk's `__ow_*` fields), and what its result turns into
 * as the HTTP answer for each extension. Pure functions; the API does the I/O.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Activation } from './activations.js';
import type { KeyValue } from './action.js';
import { bad, dict } from './entities.js';
import { STATUS } from './sandbox.js';

/** Extensions a web action answers to, and the result field each takes its body from (`.json` the whole result, `.http` an HTTP response object). */
export const WEB_EXTENSIONS: Record<string, { field?: string; contentType: string }> = {
  json: { contentType: 'application/json' },
  http: { contentType: 'application/json' },
  html: { field: 'html', contentType: 'text/html; charset=utf-8' },
  text: { field: 'text', contentType: 'text/plain; charset=utf-8' },
  svg: { field: 'svg', contentType: 'image/svg+xml' },
};

/** The request as a web action sees it. */
export interface WebRequest {
  method: string;
  headers: IncomingHttpHeaders;
  query: URLSearchParams;
  /** Path segments after the action's name. */
  extraPath: string[];
  body: Buffer;
  /** The action's annotations (`raw-http`, `final`). */
  annotations: Record<string, unknown>;
  /** The parameters the action and its package define (what `final` protects). */
  defined: readonly KeyValue[];
}

/**
 * The invocation's payload: the query's and body's parameters (JSON or
 * form), or with `raw-http` the raw query and body, plus `__ow_method`,
 * `__ow_headers` and `__ow_path`. With `final`, a request that sets a
 * parameter the action defines is a 400.
 */
export function webParams(request: WebRequest): Record<string, unknown> {
  const { headers, query, body, annotations } = request;
  const contentType = String(headers['content-type'] ?? '')
    .split(';')[0]
    .trim()
    .toLowerCase();
  const forwarded: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers))
    if (key !== 'authorization' && value !== undefined) forwarded[key] = Array.isArray(value) ? value.join(', ') : value;
  const params: Record<string, unknown> = {};
  if (annotations['raw-http'] === true) {
    params.__ow_query = query.toString();
    if (body.length > 0) params.__ow_body = textual(contentType) ? body.toString('utf8') : body.toString('base64');
  } else {
    Object.assign(params, dict([...query].map(([key, value]) => ({ key, value }))));
    if (body.length > 0) {
      if (contentType === 'application/json') {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch (error) {
          throw bad(`The request content was malformed:\n${(error as Error).message}`);
        }
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
          Object.assign(params, dict(Object.entries(parsed).map(([key, value]) => ({ key, value }))));
        else params.__ow_body = body.toString('utf8');
      } else if (contentType === 'application/x-www-form-urlencoded') {
        Object.assign(params, dict([...new URLSearchParams(body.toString('utf8'))].map(([key, value]) => ({ key, value }))));
      } else params.__ow_body = textual(contentType) ? body.toString('utf8') : body.toString('base64');
    }
  }
  if (annotations.final === true && request.defined.some((p) => Object.hasOwn(params, p.key))) {
    throw bad("Request defines parameters that are not allowed (e.g., reserved properties): the action's parameters are final.");
  }
  params.__ow_method = request.method.toLowerCase();
  params.__ow_headers = forwarded;
  params.__ow_path = request.extraPath.length > 0 ? `/${request.extraPath.join('/')}` : '';
  return params;
}

/** An HTTP answer of a web action. */
export interface WebResponse {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/** The answer for a finished activation, as `extension` shapes it (`extraPath` projects a `.json` result). */
export function webResponse(activation: Activation, extension: string, extraPath: readonly string[]): WebResponse {
  const base = { 'access-control-allow-origin': '*', 'x-openwhisk-activation-id': activation.activationId };
  const result = activation.response.result as Record<string, unknown>;
  if (!activation.response.success) {
    const status = activation.statusCode === STATUS.applicationError ? 400 : 502;
    return json(status, base, { error: result?.error ?? result, code: activation.activationId });
  }
  const shape = WEB_EXTENSIONS[extension];
  if (extension === 'json') {
    let value: unknown = result;
    for (const key of extraPath)
      value = value !== null && typeof value === 'object' && Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
    if (value === undefined) return json(404, base, { error: `the result has no field ${extraPath.join('/')}`, code: activation.activationId });
    return json(200, base, value);
  }
  if (extension === 'http') {
    const headers: OutgoingHttpHeaders = { ...base };
    if (result.headers !== null && typeof result.headers === 'object')
      for (const [key, value] of Object.entries(result.headers)) headers[key.toLowerCase()] = String(value);
    const statusCode = result.statusCode ?? result.code;
    if (statusCode !== undefined && (!Number.isInteger(statusCode) || (statusCode as number) < 100 || (statusCode as number) > 599))
      return json(502, base, { error: `The action produced an invalid HTTP status code: ${JSON.stringify(statusCode)}.`, code: activation.activationId });
    if (result.body === undefined || result.body === null) return { status: (statusCode as number) ?? 204, headers, body: Buffer.alloc(0) };
    let body: Buffer;
    const contentType = String(headers['content-type'] ?? '');
    if (typeof result.body === 'string')
      body = contentType && !textual(contentType.split(';')[0].trim().toLowerCase()) ? Buffer.from(result.body, 'base64') : Buffer.from(result.body);
    else {
      body = Buffer.from(JSON.stringify(result.body));
      headers['content-type'] ??= 'application/json';
    }
    return { status: (statusCode as number) ?? 200, headers, body };
  }
  const value = result[shape.field!];
  if (typeof value !== 'string')
    return json(400, base, {
      error: `The action did not return a "${shape.field}" string: a .${extension} web action returns { ${shape.field}: "…" }.`,
      code: activation.activationId,
    });
  return { status: 200, headers: { ...base, 'content-type': shape.contentType }, body: Buffer.from(value) };
}

function json(status: number, headers: OutgoingHttpHeaders, value: unknown): WebResponse {
  return { status, headers: { ...headers, 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(value)) };
}

/** Is a body of this media type text (passed as a string) rather than binary (passed as base64)? */
function textual(mediaType: string): boolean {
  return mediaType === '' || mediaType.startsWith('text/') || /(?:json|xml|javascript|x-www-form-urlencoded)$/.test(mediaType);
}
