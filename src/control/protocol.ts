// The control protocol: one request per line, one reply per request.
//
// Text form (a person with socat):
//   > route replace 192.168.1.32/27 via web2
//   < ok
//   > route show 192.168.1.32/27
//   < 192.168.1.32/27  via web2 (192.168.1.3)  lan0  runtime
//   < ok
//   > route add 192.168.1.33/27 via web2
//   < error EBADPREFIX: 192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?
// A reply is zero or more lines of output, then `ok` or `error CODE: message`
// on a line of its own; output lines never start with "ok" or "error ".
//
// JSON form (scripts, `vipr ctl --json`): a request line starting with `{`:
//   {"id": 1, "command": "route show"}
// is answered with one JSON line:
//   {"id": 1, "ok": true, "result": ...}  or  {"id": 1, "ok": false, "error": {"code": "...", "message": "..."}}

/** Longest request line accepted; longer lines are refused without being parsed. */
export const MAX_LINE = 4096;

export class ControlError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface Reply {
  /** Lines for the text form. */
  lines: string[];
  /** Structured result for the JSON form. */
  result: unknown;
  /** A stream (`events`): the server writes each item as a line until the client leaves; returns an unsubscribe. */
  follow?: (write: (item: unknown) => void) => () => void;
}

export function textReply(lines: string[], result: unknown = null): Reply {
  return { lines, result };
}

export function formatTextOk(reply: Reply): string {
  return [...reply.lines.map(escapeLine), 'ok'].join('\n') + '\n';
}

export function formatTextError(error: ControlError): string {
  return `error ${error.code}: ${oneLine(error.message)}\n`;
}

export function formatJsonReply(id: unknown, reply: Reply | ControlError): string {
  if (reply instanceof ControlError) {
    return JSON.stringify({ id, ok: false, error: { code: reply.code, message: oneLine(reply.message) } }) + '\n';
  }
  return JSON.stringify({ id, ok: true, result: reply.result }) + '\n';
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/** Output lines must not be mistaken for the status line. */
function escapeLine(line: string): string {
  return /^(ok$|error )/.test(line) ? ` ${line}` : line;
}

/** Columns padded to the widest cell. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ');
  return [line(header), ...rows.map(line)];
}
