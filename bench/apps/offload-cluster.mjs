// The offload service as an application embeds ebbrt-node: its own process
// starts the cluster with startCluster (1 native × 2 cores, as many cores as
// piscina's 2 threads) and renders through cluster.balanced(MarkdownEbb) —
// no `ebbrt run`. Prints "offload: serving URL" like the example; SIGINT stops it.
import { startCluster } from '@ebbrt/hosted';
import { MarkdownEbb } from '@ebbrt/examples/offload/offload.js';
import { createOffloadServer } from '@ebbrt/examples/offload/service.js';

const native = new URL('native.js', import.meta.resolve('@ebbrt/examples/offload/offload.js'));
const cluster = await startCluster({ native, nodes: 1, cores: 2 });
const markdown = cluster.balanced(MarkdownEbb);
const { server, stats } = createOffloadServer({
  markdown,
  status: () => ({
    mode: 'balanced',
    ...stats,
    natives: cluster.nodes.map((n) => ({ nodeId: n.nodeId, pid: n.pid, cores: n.cores })),
    cores: markdown.$cores(),
  }),
});
server.listen(0, '127.0.0.1', () => console.log(`offload: serving http://127.0.0.1:${server.address().port}`));
process.once('SIGINT', async () => {
  server.close();
  server.closeAllConnections();
  await cluster.stop();
  process.exit(130);
});
