/**
 * The piscina baseline's worker (`--mode piscina`): the same pure renderer the
 * Markdown Ebb's reps run. The result's buffer is moved to the main thread, not
 * copied (TextEncoder gives every result its own ArrayBuffer, so moving is safe).
 */
import { move } from 'piscina';
import { renderDocument } from './markdown.js';

export default function render(markdown: Uint8Array): Uint8Array {
  return move(renderDocument(markdown)) as Uint8Array;
}
