// Runtime route changes on disk, so they survive a restart (also kill -9).
// Written atomically before the control socket says ok: temp file in the
// same directory, fsync, rename over the old file, fsync the directory. A
// crash leaves either the old file or the new one, never half of one; a
// crash in the middle of a save leaves its temp file (`state.json.tmp-PID`),
// which the next start removes.
//
// A state file vipr cannot use (damaged, or changes that no longer fit the
// config) is never thrown away: it is set aside under a name of its own
// (`state.json.unfit-20261125T190812Z`), which no later save touches.

import { link, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { RuntimeChanges, RouteSpec } from '../rib/rib.js';
import { prefixKey } from '../rib/rib.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../util/ipv4.js';

const FORMAT_VERSION = 1;

interface StoredRoute {
  prefix: string;
  deleted?: true;
  type?: RouteSpec['type'];
  via?: { address: string; server?: string }[];
}

interface StoredState {
  version: number;
  savedAt: string;
  routes: StoredRoute[];
}

export class StateError extends Error {
  readonly code = 'ESTATE';
}

/** Why a state file is set aside: it cannot be read, or its changes do not fit the config. */
export type SetAsideReason = 'bad' | 'unfit';

export class StateStore {
  /** Temp files of interrupted saves that the last load() removed (for the log). */
  removedTemporaries: string[] = [];

  constructor(readonly file: string) {}

  /**
   * Reads saved runtime changes; undefined when there is no state file yet.
   * Throws StateError on a damaged file. Called at start, so it first removes
   * the temp files that saves cut short by a crash left behind.
   */
  async load(): Promise<RuntimeChanges | undefined> {
    this.removedTemporaries = await this.removeStaleTemporaries();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StateError(`cannot read state file ${this.file}: ${(error as Error).message}`);
    }
    let stored: StoredState;
    try {
      stored = JSON.parse(text) as StoredState;
    } catch (error) {
      throw new StateError(`state file ${this.file} is not valid JSON: ${(error as Error).message}`);
    }
    if (stored?.version !== FORMAT_VERSION || !Array.isArray(stored.routes)) {
      throw new StateError(`state file ${this.file} has an unknown format (version ${String(stored?.version)})`);
    }
    const changes: RuntimeChanges = new Map();
    stored.routes.forEach((route, i) => {
      try {
        const prefix = parsePrefix(route.prefix);
        if (route.deleted) {
          changes.set(prefixKey(prefix), null);
          return;
        }
        const type = route.type ?? 'unicast';
        if (type !== 'unicast' && type !== 'unreachable' && type !== 'blackhole') throw new Error(`unknown type ${String(type)}`);
        const via = (route.via ?? []).map((v) => ({ address: parseAddress(v.address), server: v.server }));
        changes.set(prefixKey(prefix), { prefix, type, via });
      } catch (error) {
        throw new StateError(`state file ${this.file}: routes[${i}]: ${(error as Error).message}`);
      }
    });
    return changes;
  }

  /**
   * Moves the state file out of the way, to `FILE.REASON-TIMESTAMP` beside
   * it, and returns that path. Never overwrites: a second file set aside in
   * the same second gets a suffix.
   */
  async setAside(reason: SetAsideReason, now = new Date()): Promise<string> {
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    for (let attempt = 0; ; attempt++) {
      const aside = `${this.file}.${reason}-${stamp}${attempt === 0 ? '' : `-${attempt}`}`;
      try {
        await link(this.file, aside); // unlike rename, link refuses to replace an existing file
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 100) continue;
        throw error;
      }
      await unlink(this.file);
      await this.syncDirectory();
      return aside;
    }
  }

  /**
   * Removes `FILE.tmp-PID` files whose process is gone: saves that a crash
   * (kill -9, power loss) interrupted. A live process's temp file may be a
   * save in progress (another vipr on the same file), so it stays.
   */
  private async removeStaleTemporaries(): Promise<string[]> {
    const directory = dirname(this.file);
    const pattern = new RegExp(`^${escapeRegExp(basename(this.file))}\\.tmp-([0-9]+)$`);
    let names: string[];
    try {
      names = await readdir(directory);
    } catch {
      return []; // no directory yet: nothing to clean
    }
    const removed: string[] = [];
    for (const name of names) {
      const match = pattern.exec(name);
      // Our own PID cannot be a save in progress: load() runs at start, before any save.
      if (!match || (Number(match[1]) !== process.pid && processAlive(Number(match[1])))) continue;
      try {
        await unlink(join(directory, name));
        removed.push(join(directory, name));
      } catch {
        /* gone already, or not ours to remove: the save that wrote it is no longer there either way */
      }
    }
    return removed;
  }

  /**
   * Writes every runtime change, one route per line (readable, diffable, and
   * each line made once per change: a save after one change re-formats only
   * that route, whatever the size of the table).
   */
  async save(changes: RuntimeChanges): Promise<void> {
    const lines: string[] = [];
    for (const [key, spec] of changes) lines.push(spec === null ? deletedLine(key) : routeLine(spec));
    const header = JSON.stringify({ version: FORMAT_VERSION, savedAt: new Date().toISOString() }).slice(0, -1);
    const text = `${header},"routes":[${lines.length === 0 ? '' : `\n${lines.join(',\n')}\n`}]}\n`;
    const directory = dirname(this.file);
    await mkdir(directory, { recursive: true, mode: 0o755 });
    const temporary = `${this.file}.tmp-${process.pid}`;
    const handle = await open(temporary, 'w', 0o640);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, this.file);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    await this.syncDirectory();
  }

  /** The rename or unlink itself is only durable once the directory is synced. */
  private async syncDirectory(): Promise<void> {
    const dir = await open(dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** The JSON of each saved route, by the (never modified) spec the RIB keeps: made once, reused by every later save. */
const routeLines = new WeakMap<RouteSpec, string>();

function routeLine(spec: RouteSpec): string {
  let line = routeLines.get(spec);
  if (line === undefined) {
    // JSON by hand: a table loaded at once formats every route here, and this is several times JSON.stringify's speed.
    const via = spec.via.map((v) => `{"address":"${formatAddress(v.address)}"${v.server ? `,"server":${JSON.stringify(v.server)}` : ''}}`);
    line = `{"prefix":"${formatPrefix(spec.prefix)}","type":${JSON.stringify(spec.type)},"via":[${via.join(',')}]}`;
    routeLines.set(spec, line);
  }
  return line;
}

function deletedLine(key: string): string {
  const [address, length] = key.split('/').map(Number);
  const stored: StoredRoute = { prefix: formatPrefix({ address, length }), deleted: true };
  return JSON.stringify(stored);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Signal 0 checks that a process exists; EPERM means it does, as another user's. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
