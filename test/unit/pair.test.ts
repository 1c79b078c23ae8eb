// The router pair's pieces that need no namespace: its config sections, the
// routes file BIRD includes, the `shutdown` command. The pair itself, with
// BIRD and keepalived running, is test/lab/pair.test.ts.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { parseRequest } from '../../src/control/grammar.js';
import { renderRoutes } from '../../src/engines/bird.js';
import { parsePrefix } from '../../src/util/ipv4.js';

const FILE = '/etc/vipr/vipr.yaml';
const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;
const PORTS = ['interfaces:', '  - name: eth0', '  - name: eth1'];

function errorLine(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError, the file was accepted');
}

describe('pair config', () => {
  it('a single router has none of it', () => {
    const config = parseConfig(yaml(...PORTS), FILE);
    expect(config.liveness).toBeUndefined();
    expect(config.bird).toBeUndefined();
    expect(config.keepalived).toBeUndefined();
  });

  it('bird: or keepalived: alone bring the liveness link and every default', () => {
    const config = parseConfig(yaml(...PORTS, 'bird:', 'keepalived:'), FILE);
    expect(config.liveness).toEqual({ interface: 'vipr-alive' });
    expect(config.bird).toEqual({
      socket: '/run/bird/bird.ctl', routesFile: '/run/vipr/bird-routes.conf', protocol: 'vipr', birdc: 'birdc',
      shutdownGraceMs: 1000, shutdownQuietMs: 200, optional: false,
    });
    expect(config.keepalived).toEqual({ pidFile: '/run/keepalived.pid', releaseMs: 300, optional: false });
  });

  it('announce takes prefixes', () => {
    const config = parseConfig(yaml(...PORTS, 'bird: { announce: [192.168.1.32/27, 192.168.1.64/27] }'), FILE);
    expect(config.bird?.announce).toEqual([parsePrefix('192.168.1.32/27'), parsePrefix('192.168.1.64/27')]);
  });

  it.each([
    [['liveness: { interface: eth1 }'], '/etc/vipr/vipr.yaml:4:24: liveness.interface: "eth1" is a data-plane port; the liveness link is an interface of its own that vipr creates'],
    [['bird: { protocol: "vipr-static" }'], '/etc/vipr/vipr.yaml:4:19: bird.protocol: must be a BIRD protocol name (a letter or _, then letters, digits, _)'],
    [['bird: { socket: bird.ctl }'], '/etc/vipr/vipr.yaml:4:17: bird.socket: must be an absolute path'],
    [['bird: { announce: [] }'], '/etc/vipr/vipr.yaml:4:19: bird.announce: empty list; name a prefix, or leave announce out to announce every route to servers'],
    [['keepalived: { releaseMs: -1 }'], '/etc/vipr/vipr.yaml:4:26: keepalived.releaseMs: expected a whole number from 0 to 60000, got -1'],
    [['bird: { shutdownGrace: 1000 }'], '/etc/vipr/vipr.yaml:4:9: bird.shutdownGrace: unknown key; did you mean "shutdownGraceMs"?'],
  ])('refuses %j in one line', (lines, message) => {
    expect(errorLine(yaml(...PORTS, ...lines))).toBe(message);
  });
});

describe('the routes file BIRD includes', () => {
  it('has one static route per prefix, each via the liveness link, and says who writes it', () => {
    const text = renderRoutes([parsePrefix('192.168.1.32/27'), parsePrefix('192.168.1.128/27')], 'vipr-alive', new Date('2026-12-04T20:00:00Z'));
    const lines = text.trimEnd().split('\n');
    expect(lines.filter((l) => l.startsWith('#'))).toHaveLength(3);
    expect(lines[0]).toContain('Written by vipr at 2026-12-04T20:00:00.000Z');
    expect(lines.filter((l) => !l.startsWith('#'))).toEqual(['route 192.168.1.32/27 via "vipr-alive";', 'route 192.168.1.128/27 via "vipr-alive";']);
  });

  it('with nothing to announce, has no route at all', () => {
    expect(renderRoutes([], 'vipr-alive').split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([]);
  });
});

describe('vipr ctl shutdown', () => {
  it('is one word', () => {
    expect(parseRequest('shutdown')).toEqual({ command: 'shutdown' });
    expect(() => parseRequest('shutdown now')).toThrow('`shutdown` takes no arguments');
  });
});
