/**
 * The Ebb both sides of the offload example share: `Markdown`, a `multicore`
 * Ebb (EbbRT's MulticoreEbb) whose one method renders a posted Markdown
 * document to HTML. Every core that touches it gets its own rep, so cores
 * never share state; where the reps run — the frontend's own core, or the
 * cores of native nodes — is the caller's placement decision, not the Ebb's.
 */
import { defineEbb, EbbError, type EbbErrorOptions, registerErrorCode } from '@ebbrt/ebb-protocol';
import { renderDocument } from './markdown.js';

export interface Markdown {
  /** Renders UTF-8 Markdown bytes to UTF-8 HTML bytes. Pure: the same bytes in, the same bytes out, on any core. */
  render(markdown: Uint8Array): Promise<Uint8Array>;
}

/** A `render` argument that is not a document (not bytes). Registered, so it arrives as this class from any node. */
export class InvalidDocumentError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('INVALID_DOCUMENT', message, options);
  }
}
registerErrorCode('INVALID_DOCUMENT', (message, data) => new InvalidDocumentError(message, data === undefined ? undefined : { data }));

/**
 * A core's rep renders one document per event-loop turn, in arrival order.
 * The core that accepted the frontend's connection also forwards the calls
 * and replies of the node's other cores; rendering a whole batch of calls in
 * one turn (each several ms) starved them: measured with 1 node × 2 cores,
 * the second core sat idle 80% of the time. Yielding between renders keeps it fed.
 */
export class MarkdownRep implements Markdown {
  #tail: Promise<unknown> = Promise.resolve();

  render(markdown: Uint8Array): Promise<Uint8Array> {
    if (!(markdown instanceof Uint8Array))
      return Promise.reject(new InvalidDocumentError(`Markdown.render takes the document as bytes (a Buffer or Uint8Array of UTF-8), got ${typeof markdown}`));
    const rendered = this.#tail.then(nextTurn).then(() => renderDocument(markdown));
    this.#tail = rendered.catch(() => undefined);
    return rendered;
  }
}

/** Resolves after the event loop has polled I/O once more. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export const MarkdownEbb = defineEbb<Markdown>({
  name: 'OffloadMarkdown',
  policy: 'multicore',
  methods: ['render'],
  // Rendering has no side effects: safe to retry.
  idempotent: ['render'],
  create: () => new MarkdownRep(),
});
