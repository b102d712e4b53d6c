// Peer baseline for the rpc bench: a minimal node:net server echoing
// length-prefixed frames (u32 LE length + bytes). `corked` (default) writes
// every frame one read completed under one cork, so they leave in one writev;
// `uncorked` writes each frame on its own. Prints its port.
import net from 'node:net';

const corked = (process.argv[2] ?? 'corked') === 'corked';

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let offset = 0;
    if (corked) socket.cork();
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32LE(offset);
      if (pending.length - offset < 4 + length) break;
      socket.write(pending.subarray(offset, offset + 4 + length));
      offset += 4 + length;
    }
    if (corked) socket.uncork();
    pending = pending.subarray(offset);
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
