// protocol: round trip of a `call` frame through our wire format vs a naive
// JSON baseline. Both sides do the same work per frame: encode the envelope
// and its three args, frame it, deliver it inside a chunk of many frames (as
// a socket read would), split it back into frames and decode the args, with
// the 64-byte Buffer arriving as a Buffer.
import { deepStrictEqual } from 'node:assert/strict';
import { ANY_CORE, FrameDecoder, FrameKind, decodeArgs, encodeArgs, encodeFrame, methodCode, staticIdFor } from '@ebbrt/ebb-protocol/internal';
import { compareRates, QUICK_RATES } from '../lib.mjs';

/** Frames per chunk: what one socket read / one writev typically carries under load. */
const BATCH = 64;
const EBB_ID = staticIdFor('Printer');
const CODE = methodCode('Printer', 'print');
const TEXT = 'hello, ebb';
const BLOB = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff));

/** Our wire format: encodeArgs + encodeFrame, then FrameDecoder + decodeArgs. */
function frameSide(deliver) {
  const decoder = new FrameDecoder({
    onFrame: (f) => deliver(f.kind, f.ebbId, f.core, f.code, f.callId, decodeArgs(f.payload)),
    onError: (e) => {
      throw e;
    },
  });
  const frames = new Array(BATCH);
  let callId = 0;
  return function roundTrip() {
    for (let i = 0; i < BATCH; i++) {
      callId = (callId + 1) >>> 0 || 1;
      frames[i] = encodeFrame({ kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: EBB_ID, code: CODE, callId }, encodeArgs([callId, TEXT, BLOB]));
    }
    decoder.write(Buffer.concat(frames));
    return BATCH;
  };
}

/**
 * The naive baseline: a JSON envelope per frame, newline framing, Buffers as
 * base64 (tagged `{ $b64 }`, rebuilt on receipt). Chunks cross the "socket" as
 * bytes, so both directions pay the UTF-8 conversion a real connection would.
 */
function jsonSide(deliver) {
  const toWire = (a) => (Buffer.isBuffer(a) ? { $b64: a.toString('base64') } : a);
  const fromWire = (a) => (a !== null && typeof a === 'object' && typeof a.$b64 === 'string' ? Buffer.from(a.$b64, 'base64') : a);
  let pending = '';
  let callId = 0;
  return function roundTrip() {
    let out = '';
    for (let i = 0; i < BATCH; i++) {
      callId = (callId + 1) >>> 0 || 1;
      const args = [callId, TEXT, BLOB];
      out += `${JSON.stringify({ kind: FrameKind.call, ebbId: EBB_ID, core: ANY_CORE, code: CODE, callId, args: args.map(toWire) })}\n`;
    }
    const chunk = Buffer.from(out, 'utf8');
    const lines = (pending + chunk.toString('utf8')).split('\n');
    pending = lines.pop();
    for (const line of lines) {
      const m = JSON.parse(line);
      deliver(m.kind, m.ebbId, m.core, m.code, m.callId, m.args.map(fromWire));
    }
    return BATCH;
  };
}

/** Both sides must deliver the same data: check one batch of each before timing anything. */
function verify(ctx) {
  const received = { frame: [], json: [] };
  const frame = frameSide((...m) => received.frame.push(m));
  const json = jsonSide((...m) => received.json.push(m));
  frame();
  json();
  deepStrictEqual(received.frame.length, BATCH);
  deepStrictEqual(received.frame, received.json);
  for (const [kind, ebbId, core, code, callId, args] of received.frame) {
    deepStrictEqual([kind, ebbId, core, code], [FrameKind.call, EBB_ID, ANY_CORE, CODE]);
    deepStrictEqual(args, [callId, TEXT, BLOB]);
    if (!Buffer.isBuffer(args[2])) throw new Error('the Buffer argument did not arrive as a Buffer');
  }
  const frameBytes = encodeFrame({ kind: FrameKind.call, flags: 0, core: ANY_CORE, ebbId: EBB_ID, code: CODE, callId: 1 }, encodeArgs([1, TEXT, BLOB])).length;
  const jsonBytes = Buffer.byteLength(
    `${JSON.stringify({ kind: FrameKind.call, ebbId: EBB_ID, core: ANY_CORE, code: CODE, callId: 1, args: [1, TEXT, { $b64: BLOB.toString('base64') }] })}\n`,
  );
  ctx.log(`verified: both sides deliver equal frames; bytes per frame: ours ${frameBytes}, json ${jsonBytes}`);
}

export async function run(ctx) {
  verify(ctx);
  // A sink the optimiser cannot drop: every delivered frame touches its args.
  let sink = 0;
  const consume = (_kind, _ebbId, _core, _code, _callId, args) => {
    sink += args[0] + args[1].length + args[2][63];
  };
  const timing = ctx.quick ? QUICK_RATES : { warmupMs: 1000, runMs: 1000, repeats: 7 };
  ctx.log(`measuring: ${BATCH} frames per chunk, median of ${timing.repeats} interleaved ${timing.runMs} ms runs after warm-up`);
  const rates = await compareRates({ frame: frameSide(consume), json: jsonSide(consume) }, timing);
  if (sink === 0) ctx.log('(sink)');
  for (const [name, r] of Object.entries(rates)) ctx.log(`${name}: ${r.samples.map((s) => Math.round(s)).join(', ')} frames/s`);
  return {
    cases: {
      frame_roundtrip_per_s: { value: rates.frame.median, unit: 'frames/s' },
      json_roundtrip_per_s: { value: rates.json.median, unit: 'frames/s' },
    },
    ratios: { frame_vs_json: rates.frame.median / rates.json.median },
  };
}
