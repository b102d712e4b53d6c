/**
 * A deterministic sample Markdown document for the offload example's bench and
 * tests: `sections` sections that use every construct the renderer knows
 * (headings, emphasis, links, code, nested lists, tables, quotes, breaks,
 * entities, escapes, a little non-ASCII). Same arguments, same text.
 */

const WORDS = [
  'ebb',
  'core',
  'node',
  'frontend',
  'native',
  'runtime',
  'message',
  'call',
  'reply',
  'fault',
  'handler',
  'replica',
  'partition',
  'proxy',
  'cache',
  'latency',
  'throughput',
  'socket',
  'frame',
  'payload',
  'worker',
  'thread',
  'event',
  'loop',
  'hosted',
  'backend',
  'elastic',
  'building',
  'block',
  'distributed',
  'object',
  'translation',
  'table',
  'representative',
  'membership',
  'heartbeat',
  'allocator',
  'unikernel',
  'über',
  'naïve',
  'façade',
  'œuvre',
];

/** Markdown text of `sections` sections (about 1.4 KB each); `seed` varies the words. */
export function sampleDocument(sections: number, seed = 1): string {
  if (!Number.isInteger(sections) || sections < 0) throw new TypeError('sampleDocument(sections): sections must be a non-negative integer');
  let state = seed >>> 0 || 1;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const word = () => WORDS[Math.floor(random() * WORDS.length)];
  const words = (n: number) => Array.from({ length: n }, word).join(' ');
  const sentence = () => {
    const parts = [words(3 + Math.floor(random() * 5))];
    const pick = random();
    if (pick < 0.2) parts.push(`*${words(2)}*`);
    else if (pick < 0.35) parts.push(`**${words(2)}**`);
    else if (pick < 0.45) parts.push(`\`${word()}.${word()}()\``);
    else if (pick < 0.55) parts.push(`[${words(2)}](https://example.org/${word()}?q=${word()} "${word()}")`);
    else if (pick < 0.6) parts.push(`~~${word()}~~`);
    else if (pick < 0.65) parts.push(`${word()}_${word()} &amp; 3 < 4 \\*literal\\*`);
    parts.push(words(2 + Math.floor(random() * 6)));
    const text = parts.join(' ');
    return `${text[0].toUpperCase()}${text.slice(1)}.`;
  };
  const paragraph = (n: number) => Array.from({ length: n }, sentence).join(' ');
  const out: string[] = [`# ${words(3)}\n\n${paragraph(2)}\n`];
  for (let s = 0; s < sections; s++) {
    out.push(`## ${s + 1}. ${words(2)} and ${word()}\n\n${paragraph(3)}\n${paragraph(2)}  \nafter a hard break, ${words(4)}.\n`);
    out.push(`- ${sentence()}\n- ${sentence()}\n  - ${sentence()}\n  - ${words(3)} with \`code\`\n- ${sentence()}\n`);
    out.push(`1. ${sentence()}\n2. ${sentence()}\n3. ${sentence()}\n`);
    if (s % 2 === 0) out.push(`\`\`\`js\nconst ${word()} = rt.ref(${word()}Ebb);\nawait ${word()}.render(doc); // <${word()}>\n\`\`\`\n`);
    else out.push(`> ${sentence()}\n> ${sentence()}\n>\n> - ${sentence()}\n`);
    if (s % 3 === 0)
      out.push(
        `| ${word()} | ${word()} | ${word()} |\n|:---|:---:|---:|\n| ${words(2)} | *${word()}* | ${Math.floor(random() * 1000)} |\n| \`${word()}\` | ${word()} | ${Math.floor(random() * 1000)} |\n`,
      );
    out.push(`### ${words(2)}\n\n${paragraph(2)} See <https://example.org/${word()}>.\n\n---\n`);
  }
  return out.join('\n');
}
