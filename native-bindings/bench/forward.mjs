// A two-port L2 forwarder on RingPort: every frame received on one port is
// sent unchanged on the other. No routing: it isolates the cost of the port
// backend (ring -> batch -> txBurst) for measure.sh.
//
//   node forward.mjs DIST PORT0 PORT1 [rxRing=v2|v3] [tx=sendmmsg|ring] [busy=0|1] [bypass=0|1]
//
// DIST is a compiled vipr tree (dist/ after `npm run build`). Runs until SIGTERM;
// prints the ports' counters as JSON on exit.
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [dist, name0, name1, ...rest] = process.argv.slice(2);
const opts = Object.fromEntries(rest.map((kv) => kv.split('=')));
const { RingPort } = await import(pathToFileURL(join(dist, 'src/io/ring-port.js')).href);
const { FrameBatch } = await import(pathToFileURL(join(dist, 'src/dataplane/batch.js')).href);

const options = {
  rxRing: opts.rxRing ?? 'v2',
  tx: opts.tx ?? 'sendmmsg',
  busyPoll: opts.busy === '1',
  qdiscBypass: opts.bypass === '1',
};
const ports = [new RingPort(name0, 0, options), new RingPort(name1, 1, options)];
const batch = new FrameBatch(256);
const slots = [new Uint16Array(256), new Uint16Array(256)];
let scheduled = false;

function flush() {
  scheduled = false;
  const n = batch.count;
  let c0 = 0;
  let c1 = 0;
  for (let i = 0; i < n; i++) {
    if (batch.port[i] === 0) slots[1][c1++] = i;
    else slots[0][c0++] = i;
  }
  if (c0) ports[0].txBurst(batch, slots[0], c0);
  if (c1) ports[1].txBurst(batch, slots[1], c1);
  batch.count = 0;
}

const sink = {
  batch,
  pending() {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  },
  full: flush,
  tooLong() {},
};
for (const p of ports) p.open(sink);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  const stats = ports.map((p) => p.stats());
  for (const p of ports) p.close();
  process.stdout.write(JSON.stringify(stats) + '\n');
  process.exit(0);
});
