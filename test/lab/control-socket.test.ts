// Who may use the control socket, with real users: the README's install steps
// (`adduser --system --group ... vipr`, then `adduser alice vipr`) made
// with throwaway names, vipr started with `control: { group: GROUP, mode:
// "0660" }` and its socket in a directory it creates itself. A user in the
// group runs `vipr ctl ping` (the built CLI) and gets pong; a user outside it
// gets one line saying permission denied, and exit 1; and so it stays when
// vipr is started from a root shell with `umask 077`. The users and the group
// are removed afterwards, also when a test fails (and on exit if the run dies).
// Needs root and the daemon built: npx tsc -p tsconfig.json
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, labWithVipr, REPO_ROOT, startVipr, withoutChecks, type ExecResult, type Lab, type ViprProcess,
} from './harness.js';

const SUFFIX = randomBytes(3).toString('hex');
/** The socket's group, as README's `adduser --system --group ... vipr` makes it. */
const GROUP = `vipr-t${SUFFIX}`;
/** Added to GROUP as the README says: `adduser alice vipr`. */
const MEMBER = `alice-t${SUFFIX}`;
/** In no group of vipr's. */
const OUTSIDER = `bob-t${SUFFIX}`;

/** Accounts made by this file, removed in afterAll (or on exit): users first, then the group. */
const madeUsers: string[] = [];
let madeGroup = false;

function removeAccounts(): void {
  for (const user of madeUsers.splice(0)) {
    try {
      execFileSync('userdel', [user], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  if (madeGroup) {
    madeGroup = false;
    try {
      execFileSync('groupdel', [GROUP], { stdio: 'ignore' });
    } catch {
      /* removed with its user */
    }
  }
}
process.on('exit', removeAccounts);

function adduser(args: string[], user?: string): void {
  if (user) madeUsers.push(user); // before: a half-made account is still removed
  execFileSync('adduser', ['--quiet', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

describe('control socket owner and group, with real users', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let socket = '';
  let config = '';

  beforeAll(async () => {
    // As README's install: the group (and its system user), then an operator in it.
    madeGroup = true;
    adduser(['--system', '--group', '--no-create-home', '--home', '/nonexistent', GROUP], GROUP);
    adduser(['--system', '--no-create-home', '--home', '/nonexistent', MEMBER], MEMBER);
    adduser(['--system', '--no-create-home', '--home', '/nonexistent', OUTSIDER], OUTSIDER);
    adduser([MEMBER, GROUP]);

    ({ lab, vipr, config } = await labWithVipr('control-socket', (text) => {
      const doc = parseDocument(withoutChecks(text));
      // A directory that is not there yet: vipr makes it, and others must be able to pass through it.
      socket = join(dirname(String(doc.getIn(['control', 'socket']))), 'ctl', 'vipr.sock');
      doc.setIn(['control'], doc.createNode({ socket, group: GROUP, mode: '0660' }, { flow: true }));
      return doc.toString();
    }));
  });

  afterAll(async () => {
    try {
      await closeLabWithVipr(lab, vipr);
    } finally {
      removeAccounts();
    }
  });

  /** `vipr ctl --socket SOCK ARGS...` as `user` (its own uid, primary group and supplementary groups), in the router namespace. */
  const ctlAs = (user: string, args: string[]): Promise<ExecResult> =>
    lab!.exec('router', [
      'setpriv', `--reuid=${user}`, `--regid=${execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim()}`, '--init-groups',
      process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'ctl', '--socket', socket, ...args,
    ]);

  it('the socket is root:GROUP, mode 0660, in a directory vipr made that anyone may pass through', async () => {
    const stat = await lab!.exec('router', ['stat', '-c', '%U:%G %a %F', socket, dirname(socket)]);
    expect(stat.code, stat.stderr).toBe(0);
    expect(stat.stdout).toBe(`root:${GROUP} 660 socket\nroot:root 755 directory\n`);
    expect(execFileSync('id', ['-nG', MEMBER], { encoding: 'utf8' }).trim().split(' ')).toContain(GROUP);
    expect(execFileSync('id', ['-nG', OUTSIDER], { encoding: 'utf8' }).trim().split(' ')).not.toContain(GROUP);
  });

  it(`a user in the group (adduser ${MEMBER} ${GROUP}) runs vipr ctl ping and route show`, async () => {
    const ping = await ctlAs(MEMBER, ['ping']);
    expect(ping).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });
    const routes = await ctlAs(MEMBER, ['route', 'show', '192.168.1.32/27']);
    expect(routes.code, routes.stderr).toBe(0);
    expect(routes.stdout).toMatch(/^192\.168\.1\.32\/27\s+via web1 \(192\.168\.1\.2\)/m);
  });

  it('a user outside the group is refused: one line, permission denied, exit 1', async () => {
    const ping = await ctlAs(OUTSIDER, ['ping']);
    expect(ping.code).toBe(1);
    expect(ping.stdout).toBe('');
    expect(ping.stderr).toBe(
      `vipr: cannot connect to control socket ${socket}: EACCES (permission denied: only the socket's owner and group may use it; add this user to its group)\n`,
    );
  });

  it('started from a root shell with umask 077, vipr still makes its socket directory 0755: the group reaches the socket', async () => {
    expect(await vipr!.stop(), vipr!.logs.slice(-5).join('\n')).toBe(0);
    const doc = parseDocument(await readFile(config, 'utf8'));
    socket = join(dirname(dirname(socket)), 'ctl-umask', 'vipr.sock');
    doc.setIn(['control', 'socket'], socket);
    const strict = join(dirname(config), 'control-socket-umask.yaml');
    await writeFile(strict, doc.toString());
    vipr = await startVipr(lab!, strict, { before: 'umask 077' });
    const stat = await lab!.exec('router', ['stat', '-c', '%U:%G %a %F', socket, dirname(socket)]);
    expect(stat.stdout).toBe(`root:${GROUP} 660 socket\nroot:root 755 directory\n`);
    expect(await ctlAs(MEMBER, ['ping'])).toEqual({ code: 0, stdout: 'pong\n', stderr: '' });
  });
});
