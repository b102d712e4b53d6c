// Peer baseline for the rpc bench: a minimal node:net server echoing
// length-prefixed frames (u32 LE length + bytes). Prints its port.
import net from 'node:net';

const server = net.createServer({ noDelay: true }, (socket) => {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let offset = 0;
    const out = [];
    while (pending.length - offset >= 4) {
      const length = pending.readUInt32LE(offset);
      if (pending.length - offset < 4 + length) break;
      out.push(pending.subarray(offset, offset + 4 + length));
      offset += 4 + length;
    }
    pending = pending.subarray(offset);
    if (out.length) socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
  });
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
