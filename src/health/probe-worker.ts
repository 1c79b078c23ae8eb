// The probe thread: runs TCP and HTTP checks for the daemon's health monitor
// off the data plane's event loop. A check's sockets, HTTP parsing and timers
// would otherwise run between two packet batches and add their time to the
// forwarding latency's tail. One message in per check, one result out.

import { parentPort, workerData } from 'node:worker_threads';
import { loadNative } from '../io/ring-port.js';
import { runCheck, type CheckContext } from './checks.js';
import type { ProbeHello, ProbeReply, ProbeRequest, ProbeWorkerData } from './probe-thread.js';

const port = parentPort;
if (!port) throw new Error('probe-worker.js runs as a worker thread of the vipr daemon');

// Off the data plane's CPU when the daemon pinned that thread (dataplane.cpu).
const { cpus } = (workerData ?? {}) as ProbeWorkerData;
const hello: ProbeHello = { hello: true };
if (cpus && cpus.length > 0) {
  try {
    const native = loadNative();
    native.setThreadAffinity(cpus);
    hello.cpus = native.getThreadAffinity();
  } catch (error) {
    hello.error = (error as Error).message;
  }
}
port.postMessage(hello);

// ARP and ICMP stay on the daemon's thread (vipr's own ARP on its ports; the
// raw ICMP socket's addon cannot load in a worker), so they never come here.
const refuse = async (): Promise<never> => {
  throw new Error('this check type runs on the data plane thread');
};
const context = { arp: { probe: refuse }, icmp: { ping: refuse } } as unknown as CheckContext;

port.on('message', (request: ProbeRequest) => {
  void runCheck(request.check, request.address, request.timeoutMs, context).then((result) => {
    const reply: ProbeReply = { id: request.id, ...result };
    port.postMessage(reply);
  });
});
