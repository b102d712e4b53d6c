/**
 * Frames that arrive in the same chunk as the welcome reach the handler the
 * caller sets once `Connection.connect()` resolved: a native that is told
 * goodbye the moment it joined (found with VM natives, whose guest reads the
 * welcome and the goodbye in one go) must still see the goodbye.
 */
import { describe, expect, it } from 'vitest';
import {
  ANY_CORE,
  Connection,
  CONTROL_CODES,
  decodeControl,
  encodeControl,
  encodeFrame,
  FrameDecoder,
  FrameKind,
  HelloPurpose,
  memoryTransportPair,
  HANDSHAKE_VERSION,
  newNonce,
  PROTOCOL_VERSION,
  secretKey,
  sessionKey,
  transcriptOf,
  welcomeMac,
  type ControlBodies,
  type ControlMessage,
  type ControlType,
  type Hello,
} from '@ebbrt/ebb-protocol/internal';

const SECRET = 'early-frames-test-secret';

const control = <K extends ControlType>(type: K, body: Partial<ControlBodies[K]>) =>
  encodeFrame({ kind: FrameKind.control, flags: 0, core: ANY_CORE, ebbId: 0, code: CONTROL_CODES[type], callId: 0 }, encodeControl(type, body));

describe('frames right behind the welcome', () => {
  it("a goodbye in the welcome's chunk is delivered to the handler set after connect() resolves", async () => {
    const [clientEnd, serverEnd] = memoryTransportPair('memory:native', 'memory:frontend');
    const nonce = newNonce();
    // A scripted frontend: challenge, then welcome + goodbye written as one chunk.
    const decoder = new FrameDecoder({
      onFrame: (frame) => {
        const message = decodeControl(frame.payload);
        if (message.type !== 'hello') return;
        const hello = message.body as Hello;
        serverEnd.write([
          Buffer.concat([
            control('welcome', {
              nodeId: 7,
              idSpace: 3,
              mac: welcomeMac(sessionKey(secretKey(SECRET), transcriptOf(hello, nonce, 1)), { nodeId: 7, incarnation: 0, idSpace: 3 }),
            }),
            control('goodbye', { reason: 'stop right away' }),
          ]),
        ]);
      },
      onError: (error) => {
        throw error;
      },
    });
    serverEnd.onData((chunk) => decoder.write(chunk));
    serverEnd.write([control('challenge', { nonce, protocolVersion: PROTOCOL_VERSION, handshakeVersion: HANDSHAKE_VERSION, nodeId: 1 })]);

    const { conn, welcome } = await Connection.connect(clientEnd, SECRET, { purpose: HelloPurpose.join, allocationId: 'a', cores: 1, host: 'h', port: 1 });
    expect(welcome.nodeId).toBe(7);
    await new Promise((resolve) => setImmediate(resolve));
    const controls: ControlMessage[] = [];
    conn.attach({ onCall: () => undefined, onMessage: () => undefined, onControl: (_c, message) => controls.push(message), onClose: () => undefined });
    expect(controls.map((m) => m.type)).toEqual(['goodbye']);
    expect((controls[0].body as ControlBodies['goodbye']).reason).toBe('stop right away');
    conn.close();
  });
});
