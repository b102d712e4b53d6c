/**
 * What an invocation runs beyond one action on one core, done by the
 * frontend: parameter defaults (package, binding, action, in that order of
 * precedence under the caller's), sequences (each step's result is the next
 * step's parameters; one activation per step, each with `cause` set to the
 * sequence's, plus the sequence's own whose logs list the steps), and
 * triggers (firing one activates every active rule's action with the
 * trigger's parameters under the payload; the trigger's activation has the
 * payload as its result and logs one line per rule).
 */
import { activationBytes, type Activation, type ActivationResponse, type ActivationStore } from './activations.js';
import { leafName, type Dispatcher, type Started } from './dispatch.js';
import { dict, relativeName, type TriggerRecord } from './entities.js';
import { InvokerError, MESSAGES } from './errors.js';
import { STATUS, STATUS_NAMES, type StatusCode } from './sandbox.js';
import { SEQUENCE_LIMIT, type ActionStore, type Resolved } from './store.js';

export class Flows {
  readonly #store: ActionStore;
  readonly #dispatcher: Dispatcher;
  readonly #activations: ActivationStore;

  constructor(store: ActionStore, dispatcher: Dispatcher, activations: ActivationStore) {
    this.#store = store;
    this.#dispatcher = dispatcher;
    this.#activations = activations;
  }

  /** Starts an invocation of a resolved action or sequence with `payload` over its defaults. Throws {@link InvokerError} 429/503 as the dispatcher does. */
  invoke(resolved: Resolved, payload: Record<string, unknown>, requestedAt = Date.now(), cause?: string): Started {
    return this.#start(resolved, payload, requestedAt, cause, { steps: 0 });
  }

  /** `budget` counts the steps of the outermost sequence, nested ones included (so a sequence that contains itself ends). */
  #start(resolved: Resolved, payload: Record<string, unknown>, requestedAt: number, cause: string | undefined, budget: { steps: number }): Started {
    const { record } = resolved.action;
    const params = { ...resolved.packageParameters, ...dict(record.parameters), ...payload };
    if (!record.exec.components) return this.#dispatcher.start(resolved.action, params, requestedAt, cause);
    const activationId = this.#dispatcher.activationId();
    return { activationId, done: this.#sequence(resolved, params, requestedAt, activationId, cause, budget) };
  }

  async #sequence(
    resolved: Resolved,
    input: Record<string, unknown>,
    requestedAt: number,
    activationId: string,
    cause: string | undefined,
    budget: { steps: number },
  ): Promise<Activation> {
    const { record } = resolved.action;
    const { namespace } = record;
    const start = Date.now();
    const steps: string[] = [];
    let params = input;
    let response: ActivationResponse = responseOf(STATUS.success, params);
    for (const component of record.exec.components!) {
      const step = this.#store.resolve(namespace, relativeName(namespace, component, 'sequence component'));
      if (!step) {
        response = responseOf(STATUS.applicationError, { error: `Sequence component does not exist: ${component}` });
        break;
      }
      if (++budget.steps > SEQUENCE_LIMIT) {
        response = responseOf(STATUS.applicationError, { error: `Too many actions in the sequence: more than ${SEQUENCE_LIMIT} steps.` });
        break;
      }
      let activation: Activation;
      try {
        activation = await this.#start(step, params, Date.now(), activationId, budget).done;
      } catch (error) {
        if (!(error instanceof InvokerError)) throw error;
        response = responseOf(STATUS.internalError, { error: error.message });
        break;
      }
      steps.push(activation.activationId);
      response = activation.response;
      if (!response.success) break;
      params = response.result as Record<string, unknown>;
    }
    const end = Date.now();
    const activation: Activation = {
      namespace,
      name: leafName(record.name),
      version: record.version,
      subject: namespace,
      activationId,
      start,
      end,
      duration: end - start,
      statusCode: response.statusCode,
      response,
      logs: steps,
      annotations: [
        ...(cause === undefined ? [{ key: 'topmost', value: true }] : []),
        { key: 'path', value: `${namespace}/${record.name}` },
        { key: 'kind', value: 'sequence' },
        { key: 'limits', value: { ...record.limits } },
        { key: 'waitTime', value: Math.max(0, start - requestedAt) },
      ],
      publish: false,
      ...(cause === undefined ? {} : { cause }),
    };
    this.#activations.add(activation, activationBytes(JSON.stringify(response.result), steps));
    return activation;
  }

  /**
   * Fires `trigger`: starts every active rule's action with the trigger's
   * parameters under `payload` and records the trigger's activation.
   * Returns its id, or undefined when no rule is active (OpenWhisk answers
   * 204 then and records nothing).
   */
  fire(trigger: TriggerRecord, payload: Record<string, unknown>): string | undefined {
    const { namespace } = trigger;
    const rules = this.#store.list('rules', namespace).filter((rule) => rule.record.trigger === trigger.name && rule.record.status === 'active');
    if (rules.length === 0) return undefined;
    const activationId = this.#dispatcher.activationId();
    const params = { ...dict(trigger.parameters), ...payload };
    const start = Date.now();
    const logs = rules.map(({ record: rule }) => {
      const line = { rule: `${namespace}/${rule.name}`, action: `${namespace}/${rule.action}` };
      const resolved = this.#store.resolve(namespace, rule.action);
      if (!resolved) return JSON.stringify({ statusCode: 1, success: false, error: MESSAGES.actionRemoved, ...line });
      try {
        const started = this.invoke(resolved, params, start, activationId);
        return JSON.stringify({ statusCode: 0, success: true, activationId: started.activationId, ...line });
      } catch (error) {
        if (!(error instanceof InvokerError)) throw error;
        // As OpenWhisk's controller: a server-side refusal (503) is a whisk error, any other (429) an application error.
        return JSON.stringify({
          statusCode: error.status >= 500 ? STATUS.internalError : STATUS.applicationError,
          success: false,
          error: error.message,
          ...line,
        });
      }
    });
    // The trigger's own result is the payload it was fired with (its parameters go to the actions only).
    const result = JSON.stringify(payload);
    this.#activations.add(
      {
        namespace,
        name: trigger.name,
        version: trigger.version,
        subject: namespace,
        activationId,
        start,
        end: start,
        duration: 0,
        statusCode: STATUS.success,
        response: responseOf(STATUS.success, payload),
        logs,
        annotations: [
          { key: 'path', value: `${namespace}/${trigger.name}` },
          { key: 'kind', value: 'trigger' },
        ],
        publish: false,
      },
      activationBytes(result, logs),
    );
    return activationId;
  }
}

function responseOf(status: StatusCode, result: unknown): ActivationResponse {
  return { status: STATUS_NAMES[status], statusCode: status, success: status === STATUS.success, result };
}
