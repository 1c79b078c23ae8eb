// What the lab benchmarks (reroute, failover, forwarding) share: where the
// repository is, and reading a child process's output line by line.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest directory above this file with vipr's package.json (works from bench/ and dist/bench/). */
export const REPO_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vipr') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: cannot find the repository root (package.json of vipr)');
    dir = up;
  }
})();

export const LAB_SH = join(REPO_ROOT, 'lab/lab.sh');
export const VIPR_CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

/** Calls `fn` for each line of a stream as it comes (a partial last line when the stream ends). */
export function onLines(stream: NodeJS.ReadableStream | null | undefined, fn: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      fn(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (rest) fn(rest);
    rest = '';
  });
}
