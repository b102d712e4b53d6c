/**
 * Errors of cluster operations (`ebbrt up/ps/top/down`). Each has a stable
 * code (table in the hosted README) and a message that says what to fix.
 */
import { EbbError, type EbbErrorOptions } from '@ebbrt/ebb-protocol/internal';

export type OpsErrorCode =
  /** No state file: no cluster of that name is up from this state directory. */
  | 'CLUSTER_NOT_UP'
  /** `up` of a cluster whose state file names a live frontend. */
  | 'CLUSTER_ALREADY_UP'
  /** Several clusters are up and the command did not name one. */
  | 'AMBIGUOUS_CLUSTER'
  /** The frontend's admin port did not answer. */
  | 'ADMIN_UNREACHABLE'
  /** A node group asks for a backend this build does not have. */
  | 'BACKEND_UNAVAILABLE'
  /** `down` could not stop every process the cluster started. */
  | 'DOWN_INCOMPLETE';

export class OpsError extends EbbError {
  constructor(code: OpsErrorCode, message: string, options?: EbbErrorOptions) {
    super(code, message, options);
  }
}

/** The cluster file is malformed; `field` is the path of the bad field (`groups[1].cores`), when there is one. */
export class ClusterFileError extends EbbError {
  readonly field?: string;

  constructor(message: string, field?: string, options?: Pick<EbbErrorOptions, 'cause'>) {
    super('BAD_CLUSTER_FILE', message, { cause: options?.cause, data: field === undefined ? undefined : { field } });
    if (field !== undefined) this.field = field;
  }
}
