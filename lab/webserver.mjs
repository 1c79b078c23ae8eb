#!/usr/bin/env node
// Tiny HTTP server for the vipr lab's web namespaces (plain Node, no dependencies).
//
//   node lab/webserver.mjs --name web1 --listen 192.168.1.33,192.168.1.65,... [--port 80] [--pidfile F]
//
// Routes (any address it listens on):
//   GET /           -> "<name>\n"
//   GET /health     -> 200 "ok"
//   GET /bytes/N    -> N bytes of 'x' (streamed with back-pressure; N <= 4 GiB)
//   GET /slow/N/R   -> N bytes of 'x' at R bytes/s (a piece every 20 ms): a long download
//   GET /info       -> JSON {server, local, localPort, remote, remotePort}
// Every response carries "X-Server: <name>".
import http from 'node:http';
import fs from 'node:fs';

function parseArgs(argv) {
  const o = { name: 'web', listen: [], port: 80, pidfile: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '--name') o.name = v();
    else if (a === '--listen') o.listen.push(...v().split(',').filter(Boolean));
    else if (a === '--port') o.port = Number(v());
    else if (a === '--pidfile') o.pidfile = v();
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.listen.length === 0) throw new Error('no --listen addresses');
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error('bad --port');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const MAX_BYTES = 4 * 1024 ** 3;
const CHUNK = Buffer.alloc(64 * 1024, 'x');

function send(res, status, body, type = 'text/plain') {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'X-Server': opts.name,
  });
  res.end(body);
}

function streamBytes(res, n) {
  res.writeHead(200, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': n,
    'X-Server': opts.name,
  });
  let left = n;
  const pump = () => {
    while (left > 0) {
      const len = Math.min(left, CHUNK.length);
      left -= len;
      const ok = res.write(len === CHUNK.length ? CHUNK : CHUNK.subarray(0, len));
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.on('close', () => {
    left = 0;
  });
  pump();
}

/** A piece every SLOW_TICK_MS: a long-lived connection that always has data in flight. */
const SLOW_TICK_MS = 20;
function streamSlowly(res, n, rate) {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n, 'X-Server': opts.name });
  const piece = Math.max(1, Math.round((rate * SLOW_TICK_MS) / 1000));
  let left = n;
  const timer = setInterval(() => {
    const len = Math.min(left, piece);
    left -= len;
    let rest = len;
    while (rest > 0) {
      const part = Math.min(rest, CHUNK.length);
      res.write(part === CHUNK.length ? CHUNK : CHUNK.subarray(0, part));
      rest -= part;
    }
    if (left === 0) {
      clearInterval(timer);
      res.end();
    }
  }, SLOW_TICK_MS);
  res.on('close', () => clearInterval(timer));
}

function handler(req, res) {
  const url = (req.url || '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
  if (url === '/') return send(res, 200, `${opts.name}\n`);
  if (url === '/health') return send(res, 200, 'ok');
  if (url === '/info') {
    const s = req.socket;
    return send(
      res,
      200,
      JSON.stringify({
        server: opts.name,
        local: s.localAddress,
        localPort: s.localPort,
        remote: s.remoteAddress,
        remotePort: s.remotePort,
      }) + '\n',
      'application/json',
    );
  }
  const m = /^\/bytes\/(\d{1,10})$/.exec(url);
  if (m) {
    const n = Number(m[1]);
    if (n > MAX_BYTES) return send(res, 400, 'too many bytes\n');
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Length': n, 'X-Server': opts.name });
      return res.end();
    }
    return streamBytes(res, n);
  }
  const slow = /^\/slow\/(\d{1,10})\/(\d{1,10})$/.exec(url);
  if (slow) {
    const n = Number(slow[1]);
    const rate = Number(slow[2]);
    if (n > MAX_BYTES || rate < 1) return send(res, 400, 'bad size or rate\n');
    return streamSlowly(res, n, rate);
  }
  return send(res, 404, 'not found\n');
}

const servers = [];
let pending = opts.listen.length;
for (const addr of opts.listen) {
  const srv = http.createServer(handler);
  srv.keepAliveTimeout = 5000;
  srv.on('error', (e) => {
    console.error(`${opts.name}: ${addr}:${opts.port}: ${e.message}`);
    process.exit(1);
  });
  srv.listen(opts.port, addr, () => {
    console.log(`${opts.name}: listening on ${addr}:${opts.port}`);
    if (--pending === 0 && opts.pidfile) fs.writeFileSync(opts.pidfile, `${process.pid}\n`);
  });
  servers.push(srv);
}

function stop() {
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
