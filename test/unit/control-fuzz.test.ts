// Property tests of the control protocol over a real socket (test/control-rig.ts):
// sequences of valid, mutated and random request lines, in the text and the
// JSON form, with NUL bytes, invalid UTF-8, overlong lines, and clients that
// vanish mid-line or mid-transaction. After every step:
//   - the request got one well-formed reply: output lines then `ok`, or one
//     `error CODE: message` line, or one JSON line; never EINTERNAL;
//   - an error changed nothing: routes and state file as before;
//   - the state file parses and holds exactly the RIB's runtime changes;
//   - a client that vanished inside a transaction applied nothing.
// Bounded in time: fast-check stops after TIME_LIMIT_MS and reports the seed of any failure.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_LINE } from '../../src/control/protocol.js';
import { StateStore } from '../../src/control/state-store.js';
import type { RuntimeChanges } from '../../src/rib/rib.js';
import { formatAddress } from '../../src/util/ipv4.js';
import { rig, routeRows, Wire, type Rig } from '../control-rig.js';

/** Each property stops after this long (with what it ran so far): the suite's time stays bounded on a busy box. */
const TIME_LIMIT_MS = 15_000;

// ---- what clients send -----------------------------------------------------

const PREFIXES = [
  '192.168.1.32/27', '192.168.1.64/27', '192.168.1.160/27', '172.16.1.0/24', '192.168.1.32 255.255.255.224',
  '10.9.0.0/16', '192.168.1.0/27', '0.0.0.0/0', '192.168.1.33/27', '198.51.100.0/24',
];
const TARGETS = [
  'via web1', 'via web2', 'via web3,web4', 'via web2, web3', 'via web9', 'via 192.168.1.3', 'via 10.0.0.254',
  'via 192.168.1.1', 'via 300.1.1.1', 'via web1,web1', 'unreachable', 'blackhole',
];
const OTHERS = [
  'begin', 'commit', 'abort', 'route show', 'route show 192.168.1.32/27', 'server show', 'server show web2', 'stats', 'status',
  'ping', 'help', 'neighbor show', 'route failback', 'server drain web1', 'server undrain web1', 'reload', '',
];

const change = fc.oneof(
  fc.tuple(fc.constantFrom('route add', 'route replace'), fc.constantFrom(...PREFIXES), fc.constantFrom(...TARGETS)).map((words) => words.join(' ')),
  fc.tuple(fc.constantFrom('route del', 'route revert'), fc.constantFrom(...PREFIXES)).map((words) => words.join(' ')),
);
const command = fc.oneof({ arbitrary: change, weight: 3 }, { arbitrary: fc.constantFrom(...OTHERS), weight: 2 });

/** A line with a few characters inserted, deleted or replaced. */
const mutated = (line: fc.Arbitrary<string>) =>
  fc.tuple(line, fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 4 }))
    .map(([text, edits]) => {
      let out = text;
      for (const [at, op, piece] of edits) {
        const i = out.length === 0 ? 0 : at % out.length;
        out = op === 'insert' ? out.slice(0, i) + piece + out.slice(i) : op === 'delete' ? out.slice(0, i) + out.slice(i + 1) : out.slice(0, i) + piece + out.slice(i + 1);
      }
      return out;
    });

const json = fc.tuple(fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)), command).map(([id, c]) => JSON.stringify({ id, command: c }));

const INVALID_UTF8 = [[0xc0, 0x80], [0x80], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xff, 0xfe], [0xe2, 0x82]];

/** One request line, as bytes (never a newline inside). */
const requestLine: fc.Arbitrary<Buffer> = fc.oneof(
  { arbitrary: command.map((text) => Buffer.from(text)), weight: 6 },
  { arbitrary: mutated(command).map((text) => Buffer.from(text)), weight: 3 },
  { arbitrary: json.map((text) => Buffer.from(text)), weight: 2 },
  { arbitrary: mutated(json).map((text) => Buffer.from(text)), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 80 }).map((text) => Buffer.from(text)), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 120 }).map((bytes) => Buffer.from(bytes)), weight: 1 },
  {
    arbitrary: fc.tuple(command, fc.nat(), fc.constantFrom(...INVALID_UTF8), fc.boolean()).map(([text, at, bad, nul]) => {
      const i = text.length === 0 ? 0 : at % text.length;
      return Buffer.concat([Buffer.from(text.slice(0, i)), nul ? Buffer.from([0]) : Buffer.from(bad), Buffer.from(text.slice(i))]);
    }),
    weight: 1,
  },
  { arbitrary: fc.tuple(command, fc.integer({ min: MAX_LINE - 8, max: 3 * MAX_LINE })).map(([text, size]) => Buffer.from(`${text} ${'x'.repeat(size)}`)), weight: 1 },
).map((bytes) => {
  const line = Buffer.from(bytes);
  for (let i = 0; i < line.length; i++) if (line[i] === 0x0a) line[i] = 0x20;
  return line;
});

type Step = { kind: 'line'; line: Buffer } | { kind: 'vanish'; partial: Buffer };
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: requestLine.map((line): Step => ({ kind: 'line', line })), weight: 12 },
  { arbitrary: fc.tuple(requestLine, fc.nat()).map(([line, cut]): Step => ({ kind: 'vanish', partial: line.subarray(0, line.length === 0 ? 0 : cut % line.length) })), weight: 1 },
);

// ---- what must hold ---------------------------------------------------------

/** Runtime changes as sorted lines, so the RIB's and the state file's compare. */
function describeRuntime(changes: RuntimeChanges | undefined): string[] {
  if (changes === undefined) return [];
  return [...changes].map(([key, spec]) => (spec === null
    ? `${key} deleted`
    : `${key} ${spec.type} ${spec.via.map((v) => `${formatAddress(v.address)}${v.server ? `/${v.server}` : ''}`).join(',')}`)).sort();
}

async function snapshot(r: Rig): Promise<{ rows: string[]; state: string | undefined }> {
  return { rows: routeRows(r.router), state: existsSync(r.stateFile) ? await readFile(r.stateFile, 'utf8') : undefined };
}

async function expectStateMatchesRib(r: Rig): Promise<void> {
  const stored = await new StateStore(r.stateFile).load(); // throws on a damaged file
  expect(describeRuntime(stored)).toEqual(describeRuntime(r.router.rib.runtimeChanges()));
}

/** `events` and `trace` turn a connection into a stream or keep it waiting: not for this test. */
function streaming(line: Buffer): boolean {
  return /^(events|trace)(\s|$)/.test(commandOf(line));
}

/** The command a line asks for, as the server reads it (text or JSON form). */
function commandOf(line: Buffer): string {
  const text = line.toString('utf8');
  if (!text.startsWith('{')) return text.trim();
  try {
    const command = (JSON.parse(text) as { command?: unknown }).command;
    return typeof command === 'string' ? command.trim() : '';
  } catch {
    return '';
  }
}

class Session {
  private text = '';
  private sentinels = 0;
  private constructor(readonly wire: Wire) {
    wire.socket.on('data', (chunk: string) => (this.text += chunk));
  }

  static async open(r: Rig): Promise<Session> {
    return new Session(await Wire.connect(r.socket));
  }

  /** Sends `line`, then a JSON ping with an id of its own; what came back before the ping's answer. */
  async ask(line: Buffer): Promise<string> {
    const id = `sentinel-${++this.sentinels}`;
    const answer = `{"id":"${id}","ok":true,"result":"pong"}\n`;
    this.wire.send(Buffer.concat([line, Buffer.from(`\n{"id":"${id}","command":"ping"}\n`)]));
    const end = Date.now() + 10_000;
    while (!this.text.includes(answer)) {
      if (this.wire.closed || Date.now() > end) throw new Error(`no answer to ${JSON.stringify(line.toString('latin1').slice(0, 80))}; have ${JSON.stringify(this.text.slice(0, 200))}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const at = this.text.indexOf(answer);
    const reply = this.text.slice(0, at);
    this.text = this.text.slice(at + answer.length);
    return reply;
  }
}

/** One reply, well formed; whether it was an error. */
function checkReply(line: Buffer, reply: string): 'ok' | 'error' | 'none' {
  const where = `reply to ${JSON.stringify(line.toString('latin1').slice(0, 100))}: ${JSON.stringify(reply.slice(0, 300))}`;
  if (reply === '') {
    // Only a blank line in the text form goes unanswered.
    expect(line.toString('utf8').trim(), where).toBe('');
    return 'none';
  }
  expect(reply.endsWith('\n'), where).toBe(true);
  const lines = reply.slice(0, -1).split('\n');
  if (lines.length === 1 && lines[0].startsWith('{')) {
    const answer = JSON.parse(lines[0]) as { ok: boolean; error?: { code: string; message: string } };
    expect(typeof answer.ok, where).toBe('boolean');
    if (answer.ok) return 'ok';
    expect(answer.error?.code, where).toMatch(/^E[A-Z]+$/);
    expect(answer.error?.code, where).not.toBe('EINTERNAL');
    return 'error';
  }
  const last = lines[lines.length - 1];
  if (last === 'ok') {
    expect(lines.slice(0, -1).every((l) => l !== 'ok' && !l.startsWith('error ')), where).toBe(true);
    return 'ok';
  }
  expect(lines, where).toHaveLength(1);
  expect(last, where).toMatch(/^error E[A-Z]+: \S.*$/);
  expect(last, where).not.toMatch(/^error EINTERNAL/);
  return 'error';
}

async function play(steps: Step[]): Promise<void> {
  const r = await rig();
  let session = await Session.open(r);
  let transactionOpen = false;
  try {
    for (const s of steps) {
      const before = await snapshot(r);
      if (s.kind === 'vanish') {
        session.wire.send(s.partial);
        session.wire.socket.destroy();
        await session.wire.done;
        // Until the server has let go of it: a last line without a newline is still answered (half-close), then the socket closes.
        const end = Date.now() + 5000;
        while (r.server.clients.commands > 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 2));
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (transactionOpen && !s.partial.toString('latin1').includes('commit')) expect(await snapshot(r)).toEqual(before);
        transactionOpen = false;
        session = await Session.open(r);
      } else if (!streaming(s.line)) {
        const outcome = checkReply(s.line, await session.ask(s.line));
        if (outcome === 'error') expect(await snapshot(r), `after ${JSON.stringify(s.line.toString('latin1').slice(0, 100))}`).toEqual(before);
        const word = commandOf(s.line);
        if (word === 'begin' && outcome === 'ok') transactionOpen = true;
        if (word === 'commit' || (word === 'abort' && outcome === 'ok')) transactionOpen = false;
      }
      await expectStateMatchesRib(r);
    }
  } finally {
    session.wire.socket.destroy();
    await r.server.stop();
  }
}

describe('control protocol: property tests over a real socket', () => {
  it('any sequence of lines and vanishing clients: one well-formed reply each, errors change nothing, the state file always matches the RIB', async () => {
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), play), { numRuns: 60, interruptAfterTimeLimit: TIME_LIMIT_MS });
  });

  it('transactions of random changes: a commit applies all of them or none', async () => {
    const transaction = fc.array(fc.oneof({ arbitrary: change, weight: 4 }, { arbitrary: mutated(change), weight: 1 }), { minLength: 1, maxLength: 8 });
    await fc.assert(fc.asyncProperty(fc.array(transaction, { minLength: 1, maxLength: 5 }), async (transactions) => {
      const r = await rig();
      const session = await Session.open(r);
      try {
        for (const changes of transactions) {
          const before = await snapshot(r);
          expect(checkReply(Buffer.from('begin'), await session.ask(Buffer.from('begin')))).toBe('ok');
          let refused = 0;
          for (const line of changes) if (checkReply(Buffer.from(line), await session.ask(Buffer.from(line))) === 'error') refused++;
          const commit = await session.ask(Buffer.from('commit'));
          const outcome = checkReply(Buffer.from('commit'), commit);
          if (refused > 0) expect(outcome).toBe('error');
          if (outcome === 'error') {
            expect(await snapshot(r)).toEqual(before);
          } else {
            expect(commit).toBe(`committed ${changes.length} change(s) at once\nok\n`);
            // All of them: replaying the changes one by one on the old state gives the same RIB.
            const replay = await rig();
            const other = await Session.open(replay);
            try {
              await replayState(before.state, replay, other);
              expect(routeRows(replay.router)).toEqual(before.rows);
              for (const line of changes) expect(checkReply(Buffer.from(line), await other.ask(Buffer.from(line)))).toBe('ok');
              expect(routeRows(replay.router)).toEqual(routeRows(r.router));
            } finally {
              other.wire.socket.destroy();
              await replay.server.stop();
            }
          }
          await expectStateMatchesRib(r);
        }
      } finally {
        session.wire.socket.destroy();
        await r.server.stop();
      }
    }), { numRuns: 40, interruptAfterTimeLimit: TIME_LIMIT_MS });
  });
});

/** Brings a fresh rig to the runtime changes of a state file's text (none when undefined), through its socket. */
async function replayState(state: string | undefined, r: Rig, session: Session): Promise<void> {
  if (state === undefined) return;
  const stored = JSON.parse(state) as { routes: { prefix: string; deleted?: true; type?: string; via?: { address: string }[] }[] };
  for (const route of stored.routes) {
    const line = route.deleted ? `route del ${route.prefix}`
      : `route replace ${route.prefix} ${route.type === 'unicast' ? `via ${route.via!.map((v) => v.address).join(',')}` : route.type}`;
    expect(checkReply(Buffer.from(line), await session.ask(Buffer.from(line)))).toBe('ok');
  }
}
