// Baseline of the rpc bench's cross-core cases: two worker threads joined by a
// MessageChannel, as two cores of a native are. The `echo` worker posts every
// message back; the `driver` worker measures serial round trips and a window of
// messages in flight (each reply posts the next), with the same 100 bytes a
// cross-core call carries, and answers its parent's requests.
import { parentPort, workerData } from 'node:worker_threads';

const { role, port } = workerData;

if (role === 'echo') {
  port.on('message', (message) => port.postMessage(message));
} else {
  const payload = new Uint8Array(100);
  let onReply = () => undefined;
  port.on('message', (message) => onReply(message));

  const rtt = (n) =>
    new Promise((resolve) => {
      const times = new Float64Array(n);
      let i = 0;
      let t0 = process.hrtime.bigint();
      onReply = () => {
        times[i++] = Number(process.hrtime.bigint() - t0) / 1000;
        if (i === n) {
          resolve(times.sort()[n >> 1]);
          return;
        }
        t0 = process.hrtime.bigint();
        port.postMessage({ id: i, payload });
      };
      port.postMessage({ id: 0, payload });
    });

  const pipelined = (window, ms) =>
    new Promise((resolve) => {
      let done = 0;
      let inFlight = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      onReply = (message) => {
        done++;
        inFlight--;
        if (performance.now() < end) {
          port.postMessage({ id: message.id, payload });
          inFlight++;
        } else if (inFlight === 0) resolve((done * 1000) / (performance.now() - t0));
      };
      for (let id = 0; id < window; id++, inFlight++) port.postMessage({ id, payload });
    });

  parentPort.on('message', async ({ what, n, window, ms }) => {
    parentPort.postMessage(what === 'rtt' ? await rtt(n) : await pipelined(window, ms));
  });
}
