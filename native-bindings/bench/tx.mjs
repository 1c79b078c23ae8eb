// TX cost of one port: bursts of 64-byte frames onto a veth whose peer drops
// them (unknown ethertype), sendmmsg vs TX ring, with and without
// PACKET_QDISC_BYPASS. Single process; the peer's receive work runs on this
// CPU too, the same for every mode.
//
//   node tx.mjs NETNS IFNAME [seconds=2] [rounds=3]
import { createRequire } from 'node:module';
const require = createRequire(new URL('../', import.meta.url));
const native = require('./index.js');
const [netns, ifname, secondsArg = '2', roundsArg = '3'] = process.argv.slice(2);
const SLOT = 2048, BURST = 256, LEN = 64;
const data = Buffer.alloc(BURST * SLOT), lengths = new Uint16Array(BURST).fill(LEN);
for (let i = 0; i < BURST; i++) { data.fill(0xff, i * SLOT, i * SLOT + 6); data.writeUInt16BE(0x88b5, i * SLOT + 12); }
const slots = Uint16Array.from({ length: BURST }, (_, i) => i);
const modes = [
  { tx: 'sendmmsg', qdiscBypass: false }, { tx: 'ring', qdiscBypass: false },
  { tx: 'sendmmsg', qdiscBypass: true }, { tx: 'ring', qdiscBypass: true },
];
const results = new Map();
for (let round = 0; round < Number(roundsArg); round++) {
  for (const mode of modes) {
    const counters = new Float64Array(native.COUNTERS);
    const h = native.open(ifname, { ...mode, netns, frameCount: 64 }, counters);
    const end = performance.now() + Number(secondsArg) * 1000;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() < end) sent += native.txBurst(h, data, slots, BURST, SLOT, lengths);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const key = `${mode.tx}${mode.qdiscBypass ? ' +bypass' : ''}`;
    const mpps = sent / wall / 1e6;
    const nsPerFrame = ((cpu.user + cpu.system) * 1000) / sent;
    (results.get(key) ?? results.set(key, []).get(key)).push({ mpps, nsPerFrame, failed: counters[9] });
    native.close(h);
  }
}
for (const [key, runs] of results) {
  console.log(`${key.padEnd(18)} ${runs.map((r) => r.mpps.toFixed(3)).join(' / ')} Mpps   cpu ${runs.map((r) => r.nsPerFrame.toFixed(0)).join(' / ')} ns/frame   failed ${runs.map((r) => r.failed).join('/')}`);
}
