// BIRD announces the prefixes this router can serve; vipr decides which.
//
// vipr writes one static route per prefix that has a healthy next hop into
// its routes file, `route P via "LIVENESS-LINK";`, and asks BIRD to read its
// configuration again (`birdc -s SOCKET configure`). The operator's BIRD
// config includes that file inside a `protocol static` with `check link`,
// exported to BGP: BIRD diffs the static routes and sends only the changes,
// the BGP sessions stay up. Because every route hangs on the liveness link,
// BIRD withdraws them all by itself the moment vipr stops forwarding or dies
// (src/engines/liveness.ts); the file only says which prefixes, while vipr lives.
//
// Configures never overlap: a change made while one runs is applied right
// after it, with whatever is wanted then (changes in between are merged).

import { execFile } from 'node:child_process';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { BirdConfig } from '../config/types.js';
import { formatPrefix, type Prefix } from '../util/ipv4.js';

export class BirdError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/** birdc answers within milliseconds; a BIRD that hangs must not hold up a shutdown for long. */
const BIRDC_TIMEOUT_MS = 5_000;
/** A BIRD that is down (restarting, say) is asked again this often, not on every check. */
const RETRY_MS = 2_000;

/** The routes file's text: a comment saying who writes it, then one route per prefix. */
export function renderRoutes(prefixes: readonly Prefix[], link: string, when = new Date()): string {
  const lines = [
    `# Written by vipr at ${when.toISOString()}: the prefixes this router can serve now, one static route each.`,
    `# Routes hang on the liveness link "${link}": with \`check link\`, BIRD withdraws them all when vipr stops forwarding or dies.`,
    '# Do not edit: vipr rewrites this file whenever a prefix gains or loses its last healthy next hop.',
    ...prefixes.map((p) => `route ${formatPrefix(p)} via "${link}";`),
  ];
  return `${lines.join('\n')}\n`;
}

export interface BirdcResult {
  code: number;
  /** stdout without BIRD's banner, trimmed. */
  output: string;
  stderr: string;
}

export class BirdAnnouncer {
  /** The prefixes the file says now (after the last write), as text. */
  private written: string[] | undefined;
  private wanted: readonly Prefix[] = [];
  private running: Promise<void> | undefined;
  private again = false;
  /** The last configure's outcome, for status. */
  lastError: string | undefined;
  lastConfiguredAt: number | undefined;
  private lastAttemptAt = 0;

  constructor(
    readonly config: BirdConfig,
    private readonly link: string,
    private readonly onProblem: (message: string) => void,
    private readonly onApplied: (prefixes: string[]) => void = () => undefined,
  ) {}

  /** `birdc -s SOCKET WORDS...`; never throws. */
  birdc(words: string[]): Promise<BirdcResult> {
    return new Promise((resolve) => {
      execFile(this.config.birdc, ['-s', this.config.socket, ...words], { timeout: BIRDC_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8' }, (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { killed?: boolean }) | null;
        const code = !e ? 0 : e.killed ? 124 : typeof e.code === 'number' ? e.code : e.code === 'ENOENT' ? 127 : 1;
        const output = String(stdout ?? '').split('\n').filter((line) => !/^BIRD [0-9.]+ ready\.$/.test(line.trim())).join('\n').trim();
        resolve({ code, output, stderr: String(stderr ?? '').trim() || (code === 127 ? `${this.config.birdc}: command not found` : code === 124 ? `no answer within ${BIRDC_TIMEOUT_MS} ms` : '') });
      });
    });
  }

  /**
   * BIRD runs, answers on its socket and has the static protocol that
   * includes the routes file. Throws a one-line BirdError otherwise.
   */
  async check(): Promise<void> {
    const { socket, protocol, routesFile } = this.config;
    const status = await this.birdc(['show', 'status']);
    if (status.code === 127) throw new BirdError(`bird: cannot run ${this.config.birdc} (is BIRD 2 installed? apt-get install bird2)`, 'ENOBIRDC');
    if (status.code !== 0 || !/Daemon is up and running/.test(status.output)) {
      const why = oneLine(status.stderr || status.output) || `exit ${status.code}`;
      throw new BirdError(`bird: BIRD does not answer on ${socket} (${why}); is bird running? (bird.socket names its control socket)`, 'ENOBIRD');
    }
    const shown = await this.birdc(['show', 'protocols', protocol]);
    if (shown.code !== 0 || !new RegExp(`^${protocol}\\s+Static\\s`, 'm').test(shown.output)) {
      throw new BirdError(
        `bird: BIRD on ${socket} has no static protocol "${protocol}": add \`protocol static ${protocol} { ipv4; check link on; include "${join(dirname(routesFile), `${basename(routesFile).replace(/\.conf$/, '')}*.conf`)}"; }\` and export it to BGP (packaging/bird-router.conf)`,
        'ENOPROTOCOL',
      );
    }
  }

  /** Announce exactly these prefixes (while the liveness link is up). Resolves once BIRD has them (or failed to take them). */
  announce(prefixes: readonly Prefix[]): Promise<void> {
    this.wanted = prefixes;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.apply(this.wanted);
      } while (this.again);
    })().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  /** What the routes file says now. */
  get announced(): readonly string[] {
    return this.written ?? [];
  }

  private async apply(prefixes: readonly Prefix[]): Promise<void> {
    const text = prefixes.map(formatPrefix);
    if (this.written !== undefined && sameList(text, this.written)) {
      if (this.lastError === undefined || Date.now() - this.lastAttemptAt < RETRY_MS) return;
    }
    this.lastAttemptAt = Date.now();
    const file = this.config.routesFile;
    // Written beside and renamed: BIRD never reads half a file. The temp name does not match `*.conf`.
    const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
    try {
      await writeFile(temp, renderRoutes(prefixes, this.link), { mode: 0o644 });
      await rename(temp, file);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      this.fail(`bird: cannot write ${file}: ${(error as Error).message}`);
      return;
    }
    this.written = text;
    const result = await this.birdc(['configure']);
    if (result.code !== 0 || !/Reconfigur/.test(result.output)) {
      this.fail(`bird: configure on ${this.config.socket} failed: ${oneLine(result.stderr || result.output) || `exit ${result.code}`}; BIRD keeps announcing what it had`);
      return;
    }
    this.lastError = undefined;
    this.lastConfiguredAt = Date.now();
    this.onApplied(text);
  }

  private fail(message: string): void {
    // The same problem is said once, not on every change.
    if (this.lastError !== message) this.onProblem(message);
    this.lastError = message;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function oneLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
}
