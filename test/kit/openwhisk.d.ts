/**
 * What the openwhisk client (lib/activations.js, lib/actions.js) accepts and its bundled
 * typings do not state: an activation named by `activationId`, and sequence actions
 * (`sequence: [...]` on create and update). The tests drive the real client with these.
 */
import 'openwhisk';

declare module 'openwhisk' {
  interface ActivationId {
    activationId: string;
    namespace?: string;
  }

  interface Activations {
    get(options: ActivationId): Promise<Activation<Dict>>;
    logs(options: ActivationId): Promise<{ logs: string[] }>;
    result(options: ActivationId): Promise<Response<Dict>>;
  }

  interface Actions {
    create(options: {
      name: string;
      namespace?: string;
      sequence: string[];
      overwrite?: boolean;
      params?: Dict;
      annotations?: Dict;
      limits?: Limits;
    }): Promise<Action>;
    update(options: { name: string; namespace?: string; sequence: string[]; params?: Dict; annotations?: Dict; limits?: Limits }): Promise<Action>;
  }
}
