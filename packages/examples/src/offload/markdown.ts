/**
 * Markdown → HTML with markdown-it: the CPU-heavy hot path the offload example
 * moves between the hosted node, native cores and a piscina pool. CommonMark
 * plus GFM tables and strikethrough. Raw HTML is escaped, never passed through
 * (`html: false`), and markdown-it's link check leaves `javascript:`-like URLs
 * unlinked, so the output is safe to serve.
 *
 * Deterministic and free of I/O: the same bytes in give the same bytes out on
 * every core and every node, which is what lets the example compare modes
 * byte for byte. markdown-it caps nesting (100 levels), so hostile documents
 * stay linear.
 */
import MarkdownIt from 'markdown-it';

// One renderer per thread (each core and each piscina worker loads this module once).
const md = new MarkdownIt({ html: false, xhtmlOut: true, linkify: false, typographer: false });
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/** Renders a UTF-8 Markdown document to UTF-8 HTML (invalid UTF-8 sequences become U+FFFD). */
export function renderDocument(markdown: Uint8Array): Uint8Array {
  return encoder.encode(renderMarkdown(decoder.decode(markdown)));
}

/** Renders Markdown text to HTML text. */
export function renderMarkdown(source: string): string {
  return md.render(source);
}
