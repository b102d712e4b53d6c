/**
 * Errors of the invoker's REST API. Each carries a stable `code` (the
 * runtime's one error hierarchy) and the HTTP status OpenWhisk's controller
 * answers with for the same condition; the API turns them into OpenWhisk's
 * error body `{ "error": message, "code": transaction id }`.
 */
import { EbbError, type EbbErrorOptions } from '@ebbrt/ebb-protocol';

/** Stable codes of {@link InvokerError}, with their HTTP status. */
export const INVOKER_ERRORS = {
  INVOKER_BAD_REQUEST: 400,
  INVOKER_UNAUTHORIZED: 401,
  INVOKER_NOT_FOUND: 404,
  INVOKER_METHOD_NOT_ALLOWED: 405,
  INVOKER_CONFLICT: 409,
  INVOKER_TOO_LARGE: 413,
  INVOKER_TOO_MANY_REQUESTS: 429,
  INVOKER_NOT_IMPLEMENTED: 501,
  INVOKER_UNAVAILABLE: 503,
} as const;

export type InvokerErrorCode = keyof typeof INVOKER_ERRORS;

/** A request the API refuses; `status` is the HTTP status it is answered with. */
export class InvokerError extends EbbError {
  readonly status: number;

  constructor(code: InvokerErrorCode, message: string, options?: EbbErrorOptions) {
    super(code, message, options);
    this.status = INVOKER_ERRORS[code];
  }
}

/** OpenWhisk's standard messages (controller `Messages`), so clients that match on them keep working. */
export const MESSAGES = {
  notFound: 'The requested resource does not exist.',
  unauthorized: 'The supplied authentication is invalid.',
  conflict: 'resource already exists',
  entityNameIllegal: 'The name of the entity contains illegal characters.',
  activationIdIllegal: 'The activation id is not valid.',
  actionRemoved: 'Action could not be found or may have been deleted.',
  tooManyConcurrent: (count: number, allowed: number) => `Too many concurrent requests in flight (count: ${count}, allowed: ${allowed}).`,
  timedOut: (ms: number, init = false) => `The action exceeded its time limits of ${ms} milliseconds${init ? ' during initialization.' : '.'}`,
  notADictionary: 'The action did not return a dictionary.',
  abnormalRun: 'The action did not produce a valid response and exited unexpectedly.',
  memoryExhausted: 'The action exhausted its memory and was aborted.',
  truncatedLogs: (limit: number) => `Logs were truncated because the total bytes size exceeds the limit of ${limit} bytes.`,
  truncatedResponse: (bytes: number, limit: number) => `The action produced a response that exceeded the allowed length: ${bytes} > ${limit} bytes.`,
} as const;

/** Bad app arguments (after `--`): the hosted entry prints the message and exits 2. */
export class InvokerUsageError extends EbbError {
  constructor(message: string) {
    super('INVOKER_USAGE', message);
  }
}
