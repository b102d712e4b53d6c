/**
 * A small Markdown → HTML renderer in pure JavaScript: the CPU-heavy hot path
 * the offload example moves between the hosted node, native cores and a
 * piscina pool. It covers the everyday CommonMark/GFM subset: ATX and setext
 * headings (with GitHub-style ids), paragraphs, emphasis, strong,
 * strikethrough, code spans, fenced and indented code, blockquotes, nested
 * lists (tight and loose), tables, links, images, autolinks, hard breaks and
 * entities. Raw HTML is escaped, never passed through, and `javascript:`-like
 * URLs become `#`, so the output is safe to serve.
 *
 * Deterministic and free of I/O: the same bytes in give the same bytes out on
 * every core and every node, which is what lets the example compare modes
 * byte for byte. Hostile input stays linear: emphasis uses the CommonMark
 * delimiter stack with per-kind lower bounds, bracket and code-span matches
 * are precomputed in one pass, and nesting is capped.
 */

/** Block nesting (blockquotes, list items) deeper than this renders as text. */
const MAX_BLOCK_DEPTH = 24;
/** Links nested in link text deeper than this render as text. */
const MAX_INLINE_DEPTH = 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/** Renders a UTF-8 Markdown document to UTF-8 HTML (invalid UTF-8 sequences become U+FFFD). */
export function renderDocument(markdown: Uint8Array): Uint8Array {
  return encoder.encode(renderMarkdown(decoder.decode(markdown)));
}

/** Renders Markdown text to HTML text. */
export function renderMarkdown(source: string): string {
  const lines = source.replace(/\r\n?/g, '\n').replace(/\0/g, '\uFFFD').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.charCodeAt(0) === 9 || line.startsWith(' \t') || line.startsWith('  \t') || line.startsWith('   \t')) lines[i] = expandLeadingTabs(line);
  }
  const out: string[] = [];
  renderBlocks(lines, 0, out, { slugs: new Map() }, null);
  return out.join('');
}

interface RenderState {
  /** Heading slugs used so far → how many times (GitHub appends -1, -2…). */
  slugs: Map<string, number>;
}

// ---- blocks ----

// Every pattern below matches in linear time (no two adjacent quantifiers over
// overlapping characters): a posted document must not be able to stall a core.
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const ATX = /^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const LIST_ITEM = /^( {0,3})([-+*]|(\d{1,9})([.)]))([ \t]+|$)/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const TABLE_DELIMITER_CELL = /^:?-+:?$/;

function expandLeadingTabs(line: string): string {
  let column = 0;
  let i = 0;
  for (; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 32) column++;
    else if (c === 9) column += 4 - (column % 4);
    else break;
  }
  return ' '.repeat(column) + line.slice(i);
}

function isBlank(line: string): boolean {
  return line.trim().length === 0;
}

function indentOf(line: string): number {
  let i = 0;
  while (line.charCodeAt(i) === 32) i++;
  return i;
}

/** Does `line` start a block that ends a paragraph? (Ordered lists must start at 1 to interrupt, as in CommonMark.) */
function interruptsParagraph(line: string): boolean {
  if (indentOf(line) >= 4) return false;
  if (ATX.test(line) || isFence(line) || RULE.test(line) || QUOTE.test(line)) return true;
  const item = LIST_ITEM.exec(line);
  return item !== null && item[5].length > 0 && (item[3] === undefined || item[3] === '1');
}

/**
 * Renders `lines` as a sequence of blocks into `out`. When `paragraphs` is
 * given, the out-indices of direct child paragraphs are recorded there (a
 * list item unwraps them when its list is tight). Returns whether a blank
 * line separated two of the blocks (what makes a list item loose).
 */
function renderBlocks(lines: readonly string[], depth: number, out: string[], state: RenderState, paragraphs: number[] | null): boolean {
  let i = 0;
  let blocks = 0;
  let blankBetween = false;
  let sawBlank = false;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      sawBlank = true;
      i++;
      continue;
    }
    if (sawBlank && blocks > 0) blankBetween = true;
    sawBlank = false;
    blocks++;
    i = renderBlock(lines, i, depth, out, state, paragraphs);
  }
  return blankBetween;
}

/** Renders the block starting at non-blank line `i`; returns the index after it. */
function renderBlock(lines: readonly string[], i: number, depth: number, out: string[], state: RenderState, paragraphs: number[] | null): number {
  const line = lines[i];
  const indent = indentOf(line);
  if (indent >= 4) return indentedCode(lines, i, out);
  let m: RegExpExecArray | null;
  if ((m = fence(line)) !== null) return fencedCode(lines, i, m, out);
  if ((m = ATX.exec(line)) !== null) {
    heading(m[1].length, stripClosingHashes(m[2]), out, state);
    return i + 1;
  }
  if (RULE.test(line)) {
    out.push('<hr />\n');
    return i + 1;
  }
  if (depth < MAX_BLOCK_DEPTH) {
    if (QUOTE.test(line)) return blockquote(lines, i, depth, out, state);
    if ((m = LIST_ITEM.exec(line)) !== null) return list(lines, i, depth, out, state);
  }
  if (line.includes('|') && i + 1 < lines.length && isTableDelimiter(lines[i + 1])) {
    const end = table(lines, i, out, state);
    if (end > i) return end;
  }
  return paragraph(lines, i, out, state, paragraphs);
}

function indentedCode(lines: readonly string[], start: number, out: string[]): number {
  let end = start;
  let last = start;
  while (end < lines.length && (isBlank(lines[end]) || indentOf(lines[end]) >= 4)) {
    if (!isBlank(lines[end])) last = end;
    end++;
  }
  const body: string[] = [];
  for (let k = start; k <= last; k++) body.push(lines[k].slice(Math.min(4, indentOf(lines[k]))));
  out.push('<pre><code>', escapeHtml(body.join('\n')), '\n</code></pre>\n');
  return last + 1;
}

/** An opening code fence: 3+ backticks (info without backticks) or 3+ tildes. */
function fence(line: string): RegExpExecArray | null {
  const m = FENCE.exec(line);
  return m !== null && m[2][0] === '`' && m[3].includes('`') ? null : m;
}

function isFence(line: string): boolean {
  return fence(line) !== null;
}

/** `## Title ##` → `Title`: a closing run of #s counts only after a space (or alone). */
function stripClosingHashes(text: string): string {
  let end = text.length;
  while (end > 0 && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  let hashes = end;
  while (hashes > 0 && text[hashes - 1] === '#') hashes--;
  if (hashes < end && (hashes === 0 || text[hashes - 1] === ' ' || text[hashes - 1] === '\t')) end = hashes;
  return text.slice(0, end).trim();
}

function isTableDelimiter(line: string): boolean {
  if (indentOf(line) >= 4 || !line.includes('-')) return false;
  return splitRow(line).every((cell) => TABLE_DELIMITER_CELL.test(cell));
}

function fencedCode(lines: readonly string[], start: number, open: RegExpExecArray, out: string[]): number {
  const indent = open[1].length;
  const fence = open[2];
  const info = open[3].trim().split(/[ \t]/, 1)[0];
  const closing = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`);
  const body: string[] = [];
  let i = start + 1;
  for (; i < lines.length; i++) {
    if (closing.test(lines[i])) break;
    const line = lines[i];
    body.push(line.slice(Math.min(indent, indentOf(line))));
  }
  const language = info ? ` class="language-${escapeHtml(unescapeBackslashes(info))}"` : '';
  out.push(`<pre><code${language}>`, escapeHtml(body.length > 0 ? `${body.join('\n')}\n` : ''), '</code></pre>\n');
  return i < lines.length ? i + 1 : i;
}

function heading(level: number, text: string, out: string[], state: RenderState): void {
  const html = renderInline(text.trim(), 0);
  out.push(`<h${level} id="${slugFor(html, state)}">`, html, `</h${level}>\n`);
}

/** GitHub-style anchor: the heading's text lower-cased, punctuation dropped, spaces to dashes; repeats get -1, -2… */
function slugFor(html: string, state: RenderState): string {
  const text = html.replace(/<[^>]*>/g, '').replace(/&(?:#\d+|#x[0-9a-f]+|\w+);/gi, '');
  const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-') || 'section';
  const seen = state.slugs.get(base);
  state.slugs.set(base, (seen ?? 0) + 1);
  return seen === undefined ? base : `${base}-${seen}`;
}

function blockquote(lines: readonly string[], start: number, depth: number, out: string[], state: RenderState): number {
  const inner: string[] = [];
  let i = start;
  for (; i < lines.length; i++) {
    const line = lines[i];
    const marker = QUOTE.exec(line);
    if (marker !== null) inner.push(line.slice(marker[0].length));
    else if (!isBlank(line) && inner.length > 0 && !isBlank(inner[inner.length - 1]) && !interruptsParagraph(line)) inner.push(line); // lazy continuation
    else break;
  }
  out.push('<blockquote>\n');
  renderBlocks(inner, depth + 1, out, state, null);
  out.push('</blockquote>\n');
  return i;
}

interface ListItem {
  lines: string[];
  /** A blank line followed this item before the next one. */
  blankAfter: boolean;
}

function list(lines: readonly string[], start: number, depth: number, out: string[], state: RenderState): number {
  const first = LIST_ITEM.exec(lines[start])!;
  const ordered = first[3] !== undefined;
  const kind = ordered ? first[4] : first[2];
  const items: ListItem[] = [];
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (m === null || (m[3] !== undefined) !== ordered || (ordered ? m[4] : m[2]) !== kind) break;
    // Content starts after the marker and its spaces (one space when 5 or more follow: indented code inside the item; a tab counts as one).
    const spaces = m[5].includes('\t') ? 1 : m[5].length;
    const width = m[1].length + m[2].length + (spaces === 0 || spaces > 4 ? 1 : spaces);
    const item: ListItem = { lines: [lines[i].slice(Math.min(width, lines[i].length))], blankAfter: false };
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        item.lines.push('');
        i++;
        continue;
      }
      if (indentOf(line) >= width) {
        item.lines.push(line.slice(width));
        i++;
        continue;
      }
      const previousBlank = isBlank(item.lines[item.lines.length - 1]);
      if (!previousBlank && !interruptsParagraph(line) && !LIST_ITEM.test(line)) {
        item.lines.push(line); // lazy continuation of the item's paragraph
        i++;
        continue;
      }
      break;
    }
    let trailing = 0;
    while (item.lines.length > 1 && isBlank(item.lines[item.lines.length - 1])) {
      item.lines.pop();
      trailing++;
    }
    item.blankAfter = trailing > 0;
    items.push(item);
    if (trailing > 0 && (i >= lines.length || LIST_ITEM.exec(lines[i]) === null)) {
      // Blank lines then something that is not an item: the list ended; give the blanks back.
      i -= trailing;
      item.blankAfter = false;
      break;
    }
  }
  const rendered: { out: string[]; paragraphs: number[] }[] = [];
  let loose = items.slice(0, -1).some((item) => item.blankAfter);
  for (const item of items) {
    const itemOut: string[] = [];
    const paragraphs: number[] = [];
    if (renderBlocks(item.lines, depth + 1, itemOut, state, paragraphs)) loose = true;
    rendered.push({ out: itemOut, paragraphs });
  }
  const startNumber = ordered ? Number(first[3]) : 1;
  out.push(ordered ? (startNumber === 1 ? '<ol>\n' : `<ol start="${startNumber}">\n`) : '<ul>\n');
  for (const { out: itemOut, paragraphs } of rendered) {
    if (loose) {
      out.push('<li>\n', ...itemOut, '</li>\n');
      continue;
    }
    // Tight: paragraphs lose their <p>; a block after one starts on a new line.
    for (const at of paragraphs) {
      itemOut[at] = '';
      itemOut[at + 2] = at + 2 === itemOut.length - 1 ? '' : '\n';
    }
    const opensWithBlock = itemOut.length > 0 && paragraphs[0] !== 0;
    out.push(opensWithBlock ? '<li>\n' : '<li>', ...itemOut, '</li>\n');
  }
  out.push(ordered ? '</ol>\n' : '</ul>\n');
  return i;
}

/** GFM table: header row, delimiter row, body rows until a blank line or another block. Returns `start` if it is not a table. */
function table(lines: readonly string[], start: number, out: string[], state: RenderState): number {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    const left = cell.startsWith(':');
    const right = cell.endsWith(':');
    return left && right ? ' align="center"' : right ? ' align="right"' : left ? ' align="left"' : '';
  });
  if (header.length !== aligns.length) return start;
  out.push('<table>\n<thead>\n<tr>\n');
  header.forEach((cell, k) => out.push(`<th${aligns[k]}>`, renderInline(cell, 0), '</th>\n'));
  out.push('</tr>\n</thead>\n');
  let i = start + 2;
  if (i < lines.length && !isBlank(lines[i]) && !interruptsParagraph(lines[i])) {
    out.push('<tbody>\n');
    for (; i < lines.length && !isBlank(lines[i]) && !interruptsParagraph(lines[i]); i++) {
      const cells = splitRow(lines[i]);
      out.push('<tr>\n');
      for (let k = 0; k < header.length; k++) out.push(`<td${aligns[k]}>`, k < cells.length ? renderInline(cells[k], 0) : '', '</td>\n');
      out.push('</tr>\n');
    }
    out.push('</tbody>\n');
  }
  out.push('</table>\n');
  return i;
}

/** Cells of a table row: split on pipes not escaped with a backslash; outer pipes optional. */
function splitRow(line: string): string[] {
  let text = line.trim();
  if (text.startsWith('|')) text = text.slice(1);
  if (text.endsWith('|') && !text.endsWith('\\|')) text = text.slice(0, -1);
  const cells: string[] = [];
  let cell = '';
  for (let k = 0; k < text.length; k++) {
    const c = text[k];
    if (c === '\\' && text[k + 1] === '|') {
      cell += '|';
      k++;
    } else if (c === '|') {
      cells.push(cell.trim());
      cell = '';
    } else cell += c;
  }
  cells.push(cell.trim());
  return cells;
}

function paragraph(lines: readonly string[], start: number, out: string[], state: RenderState, paragraphs: number[] | null): number {
  let i = start + 1;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (isBlank(line)) break;
    const setext = SETEXT.exec(line);
    if (setext !== null) {
      heading(setext[1][0] === '=' ? 1 : 2, lines.slice(start, i).map((l) => l.trim()).join('\n'), out, state);
      return i + 1;
    }
    if (interruptsParagraph(line)) break;
  }
  const text = lines.slice(start, i).map((l) => l.trimStart()).join('\n').trimEnd();
  paragraphs?.push(out.length);
  out.push('<p>', renderInline(text, 0), '</p>\n');
  return i;
}

// ---- inlines ----

/** A piece of output HTML in a doubly linked list (emphasis inserts tags around runs in O(1)). */
interface Piece {
  html: string;
  prev: Piece | null;
  next: Piece | null;
}

/** A run of `*`, `_` or `~~` that may open or close emphasis (CommonMark delimiter stack). */
interface Delimiter {
  piece: Piece;
  char: string;
  /** Characters of the run not yet used by a match. */
  count: number;
  /** Length of the run as written (for the rule of 3). */
  original: number;
  canOpen: boolean;
  canClose: boolean;
  prev: Delimiter | null;
  next: Delimiter | null;
}

const SPECIAL = /[\\`<![*_~&\n]/g;
const ASCII_PUNCTUATION = /[!-/:-@[-`{-~]/;
const WHITESPACE = /\s/u;
const PUNCTUATION = /[\p{P}\p{S}]/u;
const ENTITY = /&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});/y;
const AUTOLINK = /<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*)>/y;
const EMAIL_AUTOLINK = /<([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)>/y;
// Destination, then whitespace, then an optional title: group 3 (the space) must be non-empty before a title.
const DESTINATION = /[ \t\n]*(?:<([^<>\n]*)>|((?:[^\s()\\]|\\.|\((?:[^\s()\\]|\\.)*\))*))([ \t\n]*)(?:("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\((?:[^()\\]|\\.)*\))[ \t\n]*)?\)/y;

/**
 * Renders inline Markdown to HTML. `nesting` counts enclosing link texts
 * (bounded by {@link MAX_INLINE_DEPTH}).
 */
function renderInline(text: string, nesting: number): string {
  const codeEnds = matchCodeSpans(text);
  const links = nesting < MAX_INLINE_DEPTH ? matchLinks(text, codeEnds) : undefined;
  const head: Piece = { html: '', prev: null, next: null };
  let tail = head;
  const append = (html: string): Piece => {
    const piece: Piece = { html, prev: tail, next: null };
    tail.next = piece;
    tail = piece;
    return piece;
  };
  let firstDelimiter: Delimiter | null = null;
  let lastDelimiter: Delimiter | null = null;
  let plainFrom = 0;
  const flush = (to: number) => {
    if (to > plainFrom) append(escapeHtml(text.slice(plainFrom, to)));
  };
  // Where the next search for a special character starts; set before every
  // exec because link texts render recursively with the same sticky patterns.
  let scan = 0;
  for (;;) {
    SPECIAL.lastIndex = scan;
    const m = SPECIAL.exec(text);
    if (m === null) break;
    const i = m.index;
    scan = i + 1;
    const c = text[i];
    let next = i + 1;
    switch (c) {
      case '\\': {
        const after = text[i + 1];
        if (after === '\n') {
          flush(i);
          append('<br />\n');
          next = i + 2;
        } else if (after !== undefined && ASCII_PUNCTUATION.test(after)) {
          flush(i);
          append(escapeHtml(after));
          next = i + 2;
        } else continue;
        break;
      }
      case '`': {
        let run = 1;
        while (text[i + run] === '`') run++;
        const end = codeEnds.get(i);
        flush(i);
        if (end === undefined) {
          append('`'.repeat(run));
          next = i + run;
        } else {
          let code = text.slice(i + run, end).replace(/\n/g, ' ');
          if (code.length > 2 && code[0] === ' ' && code[code.length - 1] === ' ' && code.trim().length > 0) code = code.slice(1, -1);
          append(`<code>${escapeHtml(code)}</code>`);
          next = end + run;
        }
        break;
      }
      case '<': {
        AUTOLINK.lastIndex = i;
        EMAIL_AUTOLINK.lastIndex = i;
        const url = AUTOLINK.exec(text);
        const email = url === null ? EMAIL_AUTOLINK.exec(text) : null;
        if (url === null && email === null) continue;
        flush(i);
        if (url !== null) {
          append(`<a href="${safeUrl(url[1])}">${escapeHtml(url[1])}</a>`);
          next = i + url[0].length;
        } else {
          append(`<a href="mailto:${escapeHtml(email![1])}">${escapeHtml(email![1])}</a>`);
          next = i + email![0].length;
        }
        break;
      }
      case '!':
      case '[': {
        const link = links?.get(c === '!' ? i + 1 : i);
        // Not a link or image here: the brackets stay in the plain run.
        if (link === undefined || link.image !== (c === '!')) continue;
        flush(i);
        const inner = renderInline(text.slice(link.textStart, link.close), nesting + 1);
        if (link.image) append(`<img src="${link.href}" alt="${plainText(inner)}"${link.title} />`);
        else append(`<a href="${link.href}"${link.title}>${inner}</a>`);
        next = link.end;
        break;
      }
      case '*':
      case '_':
      case '~': {
        let run = 1;
        while (text[i + run] === c) run++;
        next = i + run;
        // GFM strikethrough: exactly two tildes; other runs stay in the plain run, whole.
        if (c === '~' && run !== 2) {
          scan = next;
          continue;
        }
        flush(i);
        const before = i > 0 ? text[i - 1] : ' ';
        const after = i + run < text.length ? text[i + run] : ' ';
        const beforeSpace = WHITESPACE.test(before);
        const afterSpace = WHITESPACE.test(after);
        const beforePunct = PUNCTUATION.test(before);
        const afterPunct = PUNCTUATION.test(after);
        const left = !afterSpace && (!afterPunct || beforeSpace || beforePunct);
        const right = !beforeSpace && (!beforePunct || afterSpace || afterPunct);
        const canOpen = c === '_' ? left && (!right || beforePunct) : left;
        const canClose = c === '_' ? right && (!left || afterPunct) : right;
        const piece = append(text.slice(i, i + run));
        if (canOpen || canClose) {
          const delimiter: Delimiter = { piece, char: c, count: run, original: run, canOpen, canClose, prev: lastDelimiter, next: null };
          if (lastDelimiter !== null) lastDelimiter.next = delimiter;
          else firstDelimiter = delimiter;
          lastDelimiter = delimiter;
        }
        break;
      }
      case '&': {
        ENTITY.lastIndex = i;
        const entity = ENTITY.exec(text);
        flush(i);
        append(entity === null ? '&amp;' : entity[0]);
        next = entity === null ? i + 1 : i + entity[0].length;
        break;
      }
      case '\n': {
        // Two or more spaces before a newline make a hard break.
        let spaces = 0;
        while (i - spaces - 1 >= plainFrom && text[i - spaces - 1] === ' ') spaces++;
        flush(i - spaces);
        append(spaces >= 2 ? '<br />\n' : '\n');
        break;
      }
    }
    plainFrom = next;
    scan = next;
  }
  flush(text.length);
  processEmphasis(firstDelimiter);
  let html = '';
  for (let piece = head.next; piece !== null; piece = piece.next) html += piece.html;
  return html;
}

/**
 * Start of each backtick run that opens a code span → start of its closing run
 * (the next run of exactly the same length). A run after an odd number of
 * backslashes loses its first backtick to the escape when it opens, not when
 * it closes (backslashes are literal inside code). O(n log n).
 */
function matchCodeSpans(text: string): Map<number, number> {
  const ends = new Map<number, number>();
  if (!text.includes('`')) return ends;
  const starts: number[] = [];
  const lengths: number[] = [];
  const escaped: boolean[] = [];
  /** Raw run length → indices (ascending) of the runs of that length. */
  const byLength = new Map<number, number[]>();
  for (let i = text.indexOf('`'); i !== -1; i = text.indexOf('`', i)) {
    let run = 1;
    while (text[i + run] === '`') run++;
    let slashes = 0;
    while (i - slashes - 1 >= 0 && text[i - slashes - 1] === '\\') slashes++;
    const list = byLength.get(run);
    if (list === undefined) byLength.set(run, [starts.length]);
    else list.push(starts.length);
    starts.push(i);
    lengths.push(run);
    escaped.push(slashes % 2 === 1);
    i += run;
  }
  let k = 0;
  while (k < starts.length) {
    const start = escaped[k] ? starts[k] + 1 : starts[k];
    const length = escaped[k] ? lengths[k] - 1 : lengths[k];
    const closer = length > 0 ? firstAfter(byLength.get(length), k) : undefined;
    if (closer === undefined) {
      k++;
      continue;
    }
    ends.set(start, starts[closer]);
    k = closer + 1;
  }
  return ends;
}

/** The first element of ascending `list` greater than `k` (binary search). */
function firstAfter(list: readonly number[] | undefined, k: number): number | undefined {
  if (list === undefined) return undefined;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid] <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo < list.length ? list[lo] : undefined;
}

/** The text of rendered inline HTML, for an image's alt (nested images contribute their alt). */
function plainText(html: string): string {
  return html.replace(/<img [^>]*?alt="([^"]*)"[^>]*>/g, '$1').replace(/<[^>]*>/g, '');
}

/** A `[text](destination "title")` or `![alt](…)` found by {@link matchLinks}. */
interface InlineLink {
  image: boolean;
  /** Index of the first character of the text, and of its closing `]`. */
  textStart: number;
  close: number;
  /** Index after the closing `)`. */
  end: number;
  /** Attribute-ready (escaped) href/src and ` title="…"` (or ''). */
  href: string;
  title: string;
}

/**
 * Every link and image of `text`, by the index of its `[`, found in one pass
 * with a bracket stack (CommonMark's look-for-link-or-image): a `]` closes the
 * nearest open `[`; the pair is a link when a valid `(destination "title")`
 * follows and no link formed inside it (links may not contain links; images
 * may). Escaped brackets and brackets in code spans do not count.
 */
function matchLinks(text: string, codeEnds: Map<number, number>): Map<number, InlineLink> | undefined {
  if (!text.includes('](')) return undefined;
  const found = new Map<number, InlineLink>();
  const stack: { at: number; image: boolean; linksBefore: number }[] = [];
  let linksFormed = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '`') {
      const end = codeEnds.get(i);
      if (end !== undefined) {
        let run = 1;
        while (text[i + run] === '`') run++;
        i = end + run - 1;
      } else while (text[i + 1] === '`') i++;
    } else if (c === '[') stack.push({ at: i, image: i > 0 && text[i - 1] === '!' && (i < 2 || text[i - 2] !== '\\'), linksBefore: linksFormed });
    else if (c === ']' && stack.length > 0) {
      const open = stack.pop()!;
      if (text[i + 1] !== '(' || (!open.image && linksFormed > open.linksBefore)) continue;
      DESTINATION.lastIndex = i + 2;
      const target = DESTINATION.exec(text);
      // A title must be separated from a non-empty destination by whitespace.
      if (target === null || (target[4] !== undefined && target[3] === '' && (target[1] ?? target[2]) !== '')) continue;
      const title = target[4] === undefined ? '' : ` title="${escapeHtml(unescapeBackslashes(target[4].slice(1, -1)))}"`;
      found.set(open.at, { image: open.image, textStart: open.at + 1, close: i, end: DESTINATION.lastIndex, href: safeUrl(unescapeBackslashes(target[1] ?? target[2] ?? '')), title });
      if (!open.image) linksFormed++;
      i = DESTINATION.lastIndex - 1;
    }
  }
  return found;
}

/** CommonMark "process emphasis": match closers to the nearest compatible opener, innermost first. */
function processEmphasis(first: Delimiter | null): void {
  // Lower bounds of the opener search per (char, closer length mod 3, closer can open): keeps hostile input linear.
  const bottoms = new Map<string, Delimiter | null>();
  let closer = first;
  while (closer !== null) {
    if (!closer.canClose) {
      closer = closer.next;
      continue;
    }
    const key = `${closer.char}${closer.original % 3}${closer.canOpen ? 1 : 0}`;
    const bottom = bottoms.get(key) ?? null;
    let opener = closer.prev;
    let found: Delimiter | null = null;
    while (opener !== null && opener !== bottom) {
      if (opener.char === closer.char && opener.canOpen) {
        const oddMatch = (opener.canClose || closer.canOpen) && (opener.original + closer.original) % 3 === 0 && !(opener.original % 3 === 0 && closer.original % 3 === 0);
        if (!oddMatch || closer.char === '~') {
          found = opener;
          break;
        }
      }
      opener = opener.prev;
    }
    if (found === null) {
      bottoms.set(key, closer.prev);
      const next = closer.next;
      if (!closer.canOpen) unlink(closer);
      closer = next;
      continue;
    }
    const use = closer.char === '~' ? 2 : found.count >= 2 && closer.count >= 2 ? 2 : 1;
    const tag = closer.char === '~' ? 'del' : use === 2 ? 'strong' : 'em';
    found.count -= use;
    closer.count -= use;
    found.piece.html = found.char.repeat(found.count);
    closer.piece.html = closer.char.repeat(closer.count);
    insertAfter(found.piece, `<${tag}>`);
    insertBefore(closer.piece, `</${tag}>`);
    // Delimiters between the pair can no longer match anything.
    for (let between = found.next; between !== null && between !== closer; between = between.next) unlink(between);
    found.next = closer;
    closer.prev = found;
    if (found.count === 0) unlink(found);
    if (closer.count === 0) {
      const next = closer.next;
      unlink(closer);
      closer = next;
    }
  }
}

function unlink(delimiter: Delimiter): void {
  if (delimiter.prev !== null) delimiter.prev.next = delimiter.next;
  if (delimiter.next !== null) delimiter.next.prev = delimiter.prev;
}

function insertAfter(piece: Piece, html: string): void {
  const added: Piece = { html, prev: piece, next: piece.next };
  if (piece.next !== null) piece.next.prev = added;
  piece.next = added;
}

function insertBefore(piece: Piece, html: string): void {
  const added: Piece = { html, prev: piece.prev, next: piece };
  if (piece.prev !== null) piece.prev.next = added;
  piece.prev = added;
}

// ---- escaping ----

const HTML_SPECIAL = /[&<>"]/;
const HTML_SPECIAL_ALL = /[&<>"]/g;
const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };

/** Escapes text for HTML content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return HTML_SPECIAL.test(text) ? text.replace(HTML_SPECIAL_ALL, (c) => HTML_ESCAPES[c]) : text;
}

function unescapeBackslashes(text: string): string {
  return text.includes('\\') ? text.replace(/\\([!-/:-@[-`{-~])/g, '$1') : text;
}

const UNSAFE_SCHEME = /^\s*(?:javascript|vbscript|data|file):/i;
const URL_UNSAFE_CHARS = /[^\w\-.~:/?#[\]@!$&'()*+,;=%]/gu;

/** A URL for an href/src attribute: script-capable schemes become `#`; other characters are percent-encoded, then HTML-escaped. */
function safeUrl(url: string): string {
  if (UNSAFE_SCHEME.test(url)) return '#';
  return escapeHtml(url.replace(URL_UNSAFE_CHARS, (c) => encodeURIComponent(c)));
}
