/**
 * The offload example's Markdown renderer (the CPU-heavy function the example
 * moves between the frontend, native cores and piscina): what it renders,
 * that it never passes HTML or script URLs through, that it is deterministic,
 * and that hostile documents stay linear (a posted document must not stall a core).
 * Pure code, no sockets.
 */
import { describe, expect, it } from 'vitest';
import { renderDocument, renderMarkdown } from '../src/offload/markdown.js';
import { sampleDocument } from '../src/offload/sample.js';
import { InvalidDocumentError, MarkdownRep } from '../src/offload/offload.js';

const cases: [string, string, string][] = [
  ['ATX headings, closing hashes', '# Title ##\n### Sub *part*', '<h1>Title</h1>\n<h3>Sub <em>part</em></h3>\n'],
  ['a hash without a space is text', '#5 bolt', '<p>#5 bolt</p>\n'],
  ['setext headings', 'Big\n===\nsmall\n---', '<h1>Big</h1>\n<h2>small</h2>\n'],
  ['heading text is escaped', '# Ünïcode & "stuff"!', '<h1>Ünïcode &amp; &quot;stuff&quot;!</h1>\n'],
  ['paragraphs split on blank lines', 'one\ntwo\n\n\nthree', '<p>one\ntwo</p>\n<p>three</p>\n'],
  [
    'emphasis, strong, strikethrough; intraword underscores stay',
    '*em* **strong** ***both*** _u_ __U__ ~~del~~ ~one~ snake_case_word foo*bar*',
    '<p><em>em</em> <strong>strong</strong> <em><strong>both</strong></em> <em>u</em> <strong>U</strong> <s>del</s> ~one~ snake_case_word foo<em>bar</em></p>\n',
  ],
  ['nested emphasis', '**bold *nested* text** *a **b** c*', '<p><strong>bold <em>nested</em> text</strong> <em>a <strong>b</strong> c</em></p>\n'],
  ['unmatched delimiters are text', '**a b** c** d_', '<p><strong>a b</strong> c** d_</p>\n'],
  ['code spans', '`code` ``a ` b`` `unclosed', '<p><code>code</code> <code>a ` b</code> `unclosed</p>\n'],
  ['backslash escapes', '\\*x\\* \\`y\\` \\a', '<p>*x* `y` \\a</p>\n'],
  ['hard breaks: two spaces or a backslash', 'a  \nb\\\nc', '<p>a<br />\nb<br />\nc</p>\n'],
  [
    'links, titles, images, autolinks',
    '[a](http://x.org/p?q=1&r=2 "T") ![img *x*](/p.png \'I\') <https://a.b/c> <me@x.org>',
    '<p><a href="http://x.org/p?q=1&amp;r=2" title="T">a</a> <img src="/p.png" alt="img x" title="I" /> <a href="https://a.b/c">https://a.b/c</a> <a href="mailto:me@x.org">me@x.org</a></p>\n',
  ],
  ['links may not contain links; the inner one wins', '[n [inner](u)](v)', '<p>[n <a href="u">inner</a>](v)</p>\n'],
  ['brackets without a destination are text', '[x] [y][z] [a](b c)', '<p>[x] [y][z] [a](b c)</p>\n'],
  ['code spans bind tighter than links', '[a `b](c)` d](e)', '<p><a href="e">a <code>b](c)</code> d</a></p>\n'],
  ['nested images give their alt text', '![a ![b *c*](x) d](y)', '<p><img src="y" alt="a b c d" /></p>\n'],
  ['entities decode, other HTML is escaped', '<b>x</b> & &amp; &#35; &copy; "q"', '<p>&lt;b&gt;x&lt;/b&gt; &amp; &amp; # © &quot;q&quot;</p>\n'],
  [
    'blockquotes with lazy continuation',
    '> quote\n> more\nlazy\n\n> - a\n> - b',
    '<blockquote>\n<p>quote\nmore\nlazy</p>\n</blockquote>\n<blockquote>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n</blockquote>\n',
  ],
  ['tight nested lists', '- a\n- b\n  - c\n  - d\n- e', '<ul>\n<li>a</li>\n<li>b\n<ul>\n<li>c</li>\n<li>d</li>\n</ul>\n</li>\n<li>e</li>\n</ul>\n'],
  [
    'a blank line between items makes the list loose',
    '1. a\n2. b\n\n3. c',
    '<ol>\n<li>\n<p>a</p>\n</li>\n<li>\n<p>b</p>\n</li>\n<li>\n<p>c</p>\n</li>\n</ol>\n',
  ],
  ['a blank line inside an item makes the list loose', '- a\n\n  para\n- b', '<ul>\n<li>\n<p>a</p>\n<p>para</p>\n</li>\n<li>\n<p>b</p>\n</li>\n</ul>\n'],
  ['ordered lists keep their start', '3) x\n4) y', '<ol start="3">\n<li>x</li>\n<li>y</li>\n</ol>\n'],
  ['a block inside a tight item', '- ```\n  code\n  ```\n- x', '<ul>\n<li>\n<pre><code>code\n</code></pre>\n</li>\n<li>x</li>\n</ul>\n'],
  [
    'fenced code keeps its content verbatim, escaped',
    '```js\nlet a = 1 < 2;\n\n*no*\n```\nafter',
    '<pre><code class="language-js">let a = 1 &lt; 2;\n\n*no*\n</code></pre>\n<p>after</p>\n',
  ],
  ['tilde fences and indented code', '~~~\nx\n~~~\n\n    indented\n    code', '<pre><code>x\n</code></pre>\n<pre><code>indented\ncode\n</code></pre>\n'],
  [
    'tables with alignment, escaped pipes, short rows',
    '| a | b |\n|:-|-:|\n| 1 | 2 \\| 3 |\n| 4 |',
    '<table>\n<thead>\n<tr>\n<th style="text-align:left">a</th>\n<th style="text-align:right">b</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td style="text-align:left">1</td>\n<td style="text-align:right">2 | 3</td>\n</tr>\n<tr>\n<td style="text-align:left">4</td>\n<td style="text-align:right"></td>\n</tr>\n</tbody>\n</table>\n',
  ],
  ['thematic breaks', '***\n- - -\n___', '<hr />\n<hr />\n<hr />\n'],
  ['CRLF and tabs', 'a\r\n\r\n-\tb\r\n', '<p>a</p>\n<ul>\n<li>b</li>\n</ul>\n'],
  ['the empty document', '', ''],
];

describe('renderMarkdown', () => {
  it.each(cases)('%s', (_name, markdown, html) => {
    expect(renderMarkdown(markdown)).toBe(html);
  });

  it('never emits script-capable URLs or raw HTML', () => {
    const html = renderMarkdown(
      '[x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) ![z](data:text/html,<b>) [w](vbscript:x) <script>alert(1)</script> <img src=x onerror=alert(1)>',
    );
    // Links to such URLs stay unlinked text; HTML is escaped.
    expect(html).not.toMatch(/<a |<img|<script/i);
    expect(html).toContain('[x](javascript:alert(1))');
    expect(html).toContain('&lt;script&gt;');
    expect(renderMarkdown('[ok](https://x.org) [no](javascript:x)')).toBe('<p><a href="https://x.org">ok</a> [no](javascript:x)</p>\n');
  });

  it('percent-encodes URL characters that do not belong in an attribute', () => {
    expect(renderMarkdown('[a](<with space> "t") [b](/p"q)')).toBe('<p><a href="with%20space" title="t">a</a> <a href="/p%22q">b</a></p>\n');
  });

  it('is deterministic and renders the sample document with every construct', () => {
    const doc = sampleDocument(12, 7);
    const html = renderMarkdown(doc);
    expect(renderMarkdown(doc)).toBe(html);
    for (const tag of [
      '<h1>',
      '<h2>',
      '<h3>',
      '<em>',
      '<strong>',
      '<s>',
      '<code>',
      '<a href=',
      '<ul>',
      '<ol>',
      '<li>',
      '<pre><code class="language-js">',
      '<blockquote>',
      '<table>',
      '<th style="text-align:center">',
      '<hr />',
      '<br />',
    ]) {
      expect(html, tag).toContain(tag);
    }
    expect(sampleDocument(12, 7)).toBe(doc);
    expect(sampleDocument(12, 8)).not.toBe(doc);
  });
});

describe('renderDocument (bytes in, bytes out)', () => {
  it('renders UTF-8 bytes to UTF-8 bytes', () => {
    const out = renderDocument(new TextEncoder().encode('# Œuvre — “quotes”\n'));
    expect(Buffer.from(out).toString('utf8')).toBe('<h1>Œuvre — “quotes”</h1>\n');
  });

  it('turns invalid UTF-8 into U+FFFD instead of failing', () => {
    expect(Buffer.from(renderDocument(Uint8Array.of(0x61, 0xff, 0x62))).toString('utf8')).toBe('<p>a\uFFFDb</p>\n');
  });

  it('the Ebb rep renders the same bytes and refuses non-bytes with a typed error', async () => {
    const rep = new MarkdownRep();
    const doc = new TextEncoder().encode(sampleDocument(3));
    expect(Buffer.from(await rep.render(doc)).equals(Buffer.from(renderDocument(doc)))).toBe(true);
    const error = await rep.render('# not bytes' as unknown as Uint8Array).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidDocumentError);
    expect((error as InvalidDocumentError).code).toBe('INVALID_DOCUMENT');
  });
});

describe('hostile documents stay linear', () => {
  const N = 200_000;
  const hostile: Record<string, string> = {
    'a run of asterisks': '*'.repeat(N),
    'alternating delimiters': '*a_'.repeat(N / 3),
    'unclosed emphasis openers': '* a'.repeat(N / 3),
    'open brackets': '['.repeat(N),
    'link openers without ends': '[a]('.repeat(N / 4),
    'spaces in a link destination': `[a](x${' '.repeat(N)}y`,
    'nested links': `${'['.repeat(N / 5)}x${'](u)'.repeat(N / 5)}`,
    'nested images': `${'!['.repeat(N / 6)}x${'](u)'.repeat(N / 6)}`,
    'backtick runs of every length': Array.from({ length: 600 }, (_, i) => '`'.repeat(i + 1)).join(' a '),
    backslashes: '\\'.repeat(N),
    'deep blockquote': `${'>'.repeat(N)} x`,
    'deep list': `${'- '.repeat(N / 2)}x`,
    'heading with spaces': `#${' '.repeat(N)}x`,
    'fence line with a backtick': `\`\`\`${'a'.repeat(N)}\``,
    'table delimiter with spaces': `|a|\n|---${' '.repeat(N)}x`,
    'angle brackets': '<a:'.repeat(N / 3),
    ampersands: '&'.repeat(N),
    'many lines': 'a\n'.repeat(N / 2),
  };
  it.each(Object.entries(hostile))('%s (200 kB) renders in linear time', (_name, text) => {
    const started = performance.now();
    const html = renderMarkdown(text);
    // Quadratic behaviour would take minutes at this size. markdown-it takes under 1 s for the worst of these on an
    // idle core; the bound leaves room for a 2-core machine running other test files (measured 3.3 s at load 21).
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(typeof html).toBe('string');
  });
});
