// `vipr top`: the control socket's `status`, redrawn every second until `q`
// or Ctrl-C. A thin client like `vipr ctl`: the daemon renders the screen and
// keeps the counter samples the rates come from; top only asks and draws.
//
// The terminal is put back however top ends (q, Ctrl-C, a signal, the daemon
// going away, an exception): raw mode off, cursor shown, the screen the
// operator had before restored (top draws on the alternate screen, as top(1) does).

import { ControlClient } from '../control/client.js';

export interface TopOptions {
  socket: string;
  /** Between two screens; a second unless a test is in a hurry. */
  intervalMs?: number;
}

const ESC = '\x1b[';
const ALTERNATE_SCREEN_ON = `${ESC}?1049h`;
const ALTERNATE_SCREEN_OFF = `${ESC}?1049l`;
const CURSOR_HIDE = `${ESC}?25l`;
const CURSOR_SHOW = `${ESC}?25h`;
const HOME = `${ESC}H`;
const CLEAR_SCREEN = `${ESC}2J`;
const CLEAR_LINE_END = `${ESC}K`;
const CLEAR_BELOW = `${ESC}J`;
const REVERSE = `${ESC}7m`;
const NORMAL = `${ESC}0m`;
const CTRL_C = 0x03;

/** Runs until the operator quits; returns the exit status (1 when the daemon goes away). */
export async function top(options: TopOptions): Promise<number> {
  const intervalMs = options.intervalMs ?? 1000;
  const client = await ControlClient.connect(options.socket);
  const terminal = new Terminal();
  let quit: () => void = () => undefined;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  let stopped = false;
  const stop = () => {
    stopped = true;
    quit();
  };
  terminal.onKey((key) => {
    if (key === 'q' || key === 'Q' || key.charCodeAt(0) === CTRL_C) stop();
  });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const signal of signals) process.on(signal, stop);
  try {
    terminal.enter();
    terminal.draw(header(options.socket), ['waiting for the first sample (rates need two, a second apart)...']);
    while (!stopped) {
      const started = Date.now();
      const answer = await Promise.race([client.text('status'), quitting.then(() => undefined)]);
      if (answer === undefined) break;
      if (!answer.ok) {
        terminal.leave();
        process.stderr.write(`vipr: ${answer.error!.code}: ${answer.error!.message}\n`);
        return 1;
      }
      terminal.draw(header(options.socket), answer.lines);
      const wait = Math.max(0, intervalMs - (Date.now() - started));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([quitting, new Promise((resolve) => (timer = setTimeout(resolve, wait)))]);
      clearTimeout(timer);
    }
    return 0;
  } catch (error) {
    if (stopped) return 0; // the connection closed under a pending request because we quit
    throw error;
  } finally {
    for (const signal of signals) process.off(signal, stop);
    terminal.leave();
    client.close();
  }
}

function header(socket: string): string {
  return `vipr top  ${socket}  ${new Date().toLocaleTimeString()}  (q or Ctrl-C quits)`;
}

/** The terminal as top uses it: raw keys in, whole screens out, and put back on leave(). */
class Terminal {
  private readonly input = process.stdin;
  private readonly output = process.stdout;
  private raw = false;
  private entered = false;
  private first = true;
  private listener: ((chunk: Buffer | string) => void) | undefined;
  private readonly restoreOnExit = () => this.leave();

  onKey(handler: (key: string) => void): void {
    this.listener = (chunk) => {
      for (const key of String(chunk)) handler(key);
    };
  }

  enter(): void {
    this.entered = true;
    process.on('exit', this.restoreOnExit);
    if (this.input.isTTY) {
      // Raw: keys arrive as typed, without Enter; Ctrl-C arrives as a byte rather than a signal.
      this.input.setRawMode(true);
      this.raw = true;
    }
    if (this.listener) this.input.on('data', this.listener);
    this.input.resume();
    if (this.output.isTTY) this.output.write(ALTERNATE_SCREEN_ON + CURSOR_HIDE);
  }

  /** One screen: the header, then as many lines as fit, each cut to the width. */
  draw(title: string, lines: string[]): void {
    const columns = this.output.columns || 120;
    const rows = this.output.rows || 50;
    const fit = (line: string) => (line.length > columns ? line.slice(0, columns) : line);
    const body = lines.slice(0, Math.max(1, rows - 2)).map((line) => fit(line) + CLEAR_LINE_END);
    const clear = this.first ? HOME + CLEAR_SCREEN : HOME;
    this.first = false;
    this.output.write(`${clear}${REVERSE}${fit(title).padEnd(columns)}${NORMAL}${CLEAR_LINE_END}\n${CLEAR_LINE_END}\n${body.join('\n')}\n${CLEAR_BELOW}`);
  }

  /** Puts the terminal back as it was. Idempotent; safe from an 'exit' handler (synchronous). */
  leave(): void {
    if (!this.entered) return;
    this.entered = false;
    process.off('exit', this.restoreOnExit);
    if (this.listener) this.input.off('data', this.listener);
    if (this.raw) {
      this.input.setRawMode(false);
      this.raw = false;
    }
    this.input.pause();
    if (this.output.isTTY) this.output.write(CURSOR_SHOW + ALTERNATE_SCREEN_OFF);
  }
}
