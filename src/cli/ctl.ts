// `vipr ctl`: a thin client of the control socket. Tables by default, the
// JSON form with --json; exit status 1 on any error.

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ControlClient } from '../control/client.js';

export interface CtlOptions {
  socket: string;
  json?: boolean;
  /** `vipr ctl trace --file F --prefix P ...` is the same as `vipr ctl trace F prefix P ...`. */
  file?: string;
  prefix?: string;
  port?: string;
  /** A drop reason, or `any`. */
  drop?: string;
  count?: string;
  seconds?: string;
}

/** Runs `words` as one command; returns the exit status. */
export async function ctl(words: string[], options: CtlOptions): Promise<number> {
  if (words[0] === 'apply') {
    if (words.length !== 2) return usage('usage: vipr ctl apply FILE (one change per line; all are applied at once, or none)');
    return apply(words[1], options);
  }
  if (words.length === 1 && words[0] === '-') return batch(options);
  if (words.length === 1 && words[0] === 'events') return follow(options);
  const traceWords = traceOptionWords(options);
  if ((traceWords.length > 0 || options.file !== undefined) && words[0] !== 'trace') {
    return usage('--file, --prefix, --port, --drop, --count and --seconds go with `vipr ctl trace`');
  }
  if (words[0] === 'trace' && words[1] !== 'stop') {
    if (options.file !== undefined && words.length > 1) return usage('give the trace file once: `vipr ctl trace FILE ...` or `vipr ctl trace --file FILE ...`');
    const file = options.file !== undefined ? [options.file] : [];
    return trace(['trace', ...file, ...words.slice(1), ...traceWords], options);
  }
  const client = await ControlClient.connect(options.socket);
  try {
    return await run(client, words.join(' '), options);
  } finally {
    client.close();
  }
}

async function run(client: ControlClient, command: string, options: CtlOptions): Promise<number> {
  if (options.json) {
    const answer = await client.json(command);
    process.stdout.write(JSON.stringify(answer.ok ? answer.result : { error: answer.error }, null, 2) + '\n');
    return answer.ok ? 0 : 1;
  }
  const answer = await client.text(command);
  for (const line of answer.lines) process.stdout.write(`${line}\n`);
  if (!answer.ok) {
    process.stderr.write(`vipr: ${answer.error!.code}: ${answer.error!.message}\n`);
    return 1;
  }
  return 0;
}

/** `vipr ctl apply FILE`: begin, every line, commit; any error aborts the lot. */
async function apply(file: string, options: CtlOptions): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return usage(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const changes = text.split('\n').map((line, index) => ({ line: line.replace(/#.*/, '').trim(), number: index + 1 })).filter((l) => l.line);
  const client = await ControlClient.connect(options.socket);
  try {
    const begin = await client.text('begin');
    if (!begin.ok) return fail(`${begin.error!.code}: ${begin.error!.message}`);
    for (const change of changes) {
      const answer = await client.text(change.line);
      if (!answer.ok) {
        await client.text('abort');
        return fail(`${file}:${change.number}: ${answer.error!.code}: ${answer.error!.message}; nothing applied`);
      }
    }
    const commit = await client.text('commit');
    if (!commit.ok) return fail(`${file}: ${commit.error!.code}: ${commit.error!.message}; nothing applied`);
    if (options.json) process.stdout.write(JSON.stringify({ applied: changes.length }) + '\n');
    else for (const line of commit.lines) process.stdout.write(`${line}\n`);
    return 0;
  } finally {
    client.close();
  }
}

/** `vipr ctl -`: one command per stdin line, each on its own, over one connection (like `ip -batch`). */
async function batch(options: CtlOptions): Promise<number> {
  const client = await ControlClient.connect(options.socket);
  let status = 0;
  try {
    for await (const raw of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      if ((await run(client, line, options)) !== 0) status = 1;
    }
  } finally {
    client.close();
  }
  return status;
}

/** `vipr ctl events`: prints events as they happen until interrupted. */
async function follow(options: CtlOptions): Promise<number> {
  const client = await ControlClient.connect(options.socket);
  const stop = () => client.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const answer = await client.stream('events', options.json ?? false, (line) => process.stdout.write(`${line}\n`));
  if (!answer.ok) return fail(`${answer.error!.code}: ${answer.error!.message}`);
  return 0;
}

/** The --prefix/--port/... options as words of the `trace` command (after the file). */
function traceOptionWords(options: CtlOptions): string[] {
  const words: string[] = [];
  if (options.prefix !== undefined) words.push('prefix', ...options.prefix.split(/\s+/));
  if (options.port !== undefined) words.push('port', options.port);
  if (options.drop !== undefined) words.push(...(options.drop === 'any' ? ['drops'] : ['drop', options.drop]));
  if (options.count !== undefined) words.push('count', options.count);
  if (options.seconds !== undefined) words.push('seconds', options.seconds);
  return words;
}

/**
 * `vipr ctl trace FILE ...`: the daemon writes FILE and answers when the
 * trace ends. Ctrl-C sends `trace stop` on a second connection, so the
 * summary (packets written) still arrives; a second Ctrl-C just leaves.
 */
async function trace(words: string[], options: CtlOptions): Promise<number> {
  const client = await ControlClient.connect(options.socket);
  let interrupted = 0;
  const stop = () => {
    interrupted++;
    if (interrupted > 1) {
      client.close();
      return;
    }
    process.stderr.write('vipr: stopping the trace...\n');
    void ControlClient.connect(options.socket)
      .then(async (other) => {
        await other.text('trace stop').catch(() => undefined);
        other.close();
      })
      .catch(() => client.close());
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    process.stderr.write(`vipr: tracing (${words.slice(1).join(' ')}); the summary follows when it ends, Ctrl-C stops it\n`);
    return await run(client, words.join(' '), options);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
}

function usage(message: string): number {
  process.stderr.write(`vipr: ${message}\n`);
  return 2;
}

function fail(message: string): number {
  process.stderr.write(`vipr: ${message}\n`);
  return 1;
}
