// Local-call cases of the rpc bench, one case per process so each starts with
// clean JIT feedback (a case that sees four Ebb types would otherwise leave the
// shared forwarding code polymorphic for the next). Prints one JSON line:
// { ours: [ns per call, per round], direct: [...], empty?: [...], firstCallUs?: p50 }.
//   mono      one Ebb type at the call site, next to the same method called on the rep
//   mega      four Ebb types at one call site, next to four rep classes at one site
//   noinline  a rep method too large for V8 to inline, next to calling it directly
// The mono case also measures an empty loop and the first (faulting) call of fresh refs.
import { defineEbb, silentLogger, startHosted } from '@ebbrt/hosted';
import { EchoEbb, EchoRep, benchArgs } from './echo-ebb.mjs';

const [which, roundsArg] = process.argv.slice(2);
const ROUNDS = Number(roundsArg ?? 5);
const CALLS = 2_000_000;
const [, S, B] = benchArgs();

/**
 * One generated loop per contender, so no two contenders share a call site.
 * It times itself in CPU time, not wall time: on a shared machine a loop of a
 * few ms is often preempted, and wall time would count the other processes.
 */
function loop(body) {
  return new Function(
    'targets',
    'n',
    's',
    'b',
    `
    let sink = 0;
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) sink += ${body};
    const t = process.cpuUsage(t0);
    return [((t.user + t.system) * 1000) / n, sink];`,
  );
}

/** A rep class whose `echo` is far over V8's inlining budget (460 bytes of bytecode): called, never inlined. */
function bigRepClass(name) {
  const bulk = Array.from({ length: 80 }, (_, i) => `s = s + '${i}' + b[${i % 48}];`).join('\n');
  return new Function(`return class ${name} { echo(n, s, b) { if (n < 0) { ${bulk} return s.length; } return n; } }`)();
}

/** ns per call of each contender (`{ name: [loopFn, targets] }`), rounds interleaved; returns samples by name. */
function interleaved(contenders) {
  const names = Object.keys(contenders);
  for (const name of names) contenders[name][0](contenders[name][1], CALLS, S, B);
  const samples = Object.fromEntries(names.map((name) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) samples[name].push(contenders[name][0](contenders[name][1], CALLS, S, B)[0]);
  }
  return samples;
}

const hosted = await startHosted({ secret: 'bench-secret-123', logger: silentLogger });
const rt = hosted.runtime;
let out;
switch (which) {
  case 'mono': {
    out = interleaved({
      ours: [loop('targets.echo(i, s, b)'), rt.ref(EchoEbb)],
      direct: [loop('targets.echo(i, s, b)'), new EchoRep()],
      empty: [loop('i'), undefined],
    });
    // The first call through a ref of an id this core never touched faults its rep in.
    const times = [];
    for (let k = 0; k < 500; k++) {
      const ref = rt.ref(EchoEbb, 0x7f000000 + k);
      const t0 = process.hrtime.bigint();
      ref.echo(k, S, B);
      times.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    out.firstCallUs = times.sort((a, b) => a - b)[times.length >> 1];
    break;
  }
  case 'mega': {
    const classes = [0, 1, 2, 3].map((k) => new Function('base', `return class Echo${k} extends base {}`)(EchoRep));
    const refs = classes.map((Rep, k) => rt.ref(defineEbb({ name: `BenchEchoType${k}`, policy: 'multicore', methods: ['echo'], create: () => new Rep() })));
    out = interleaved({
      ours: [loop('targets[i & 3].echo(i, s, b)'), refs],
      direct: [loop('targets[i & 3].echo(i, s, b)'), classes.map((Rep) => new Rep())],
    });
    break;
  }
  case 'noinline': {
    const Big = bigRepClass('BigEchoRep');
    const ref = rt.ref(defineEbb({ name: 'BenchBigEcho', policy: 'multicore', methods: ['echo'], create: () => new Big() }));
    out = interleaved({
      ours: [loop('targets.echo(i, s, b)'), ref],
      direct: [loop('targets.echo(i, s, b)'), new Big()],
    });
    break;
  }
  default:
    throw new TypeError(`local-calls: unknown case "${which}" (mono, mega, noinline)`);
}
await hosted.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
