// A tiny pcapng reader for the trace tests: just enough to check what
// `vipr ctl trace` wrote (section header, interfaces, enhanced packets with
// their comment and direction). Little-endian sections only, like vipr writes.

export interface PcapngInterface {
  linkType: number;
  name?: string;
  tsresol?: number;
}

export interface PcapngPacket {
  interfaceId: number;
  interfaceName?: string;
  /** Microseconds since the epoch (if_tsresol 6). */
  timestamp: number;
  data: Buffer;
  originalLength: number;
  comments: string[];
  /** 1 inbound, 2 outbound, 0 unknown (epb_flags bits 0-1). */
  direction: number;
}

export interface Pcapng {
  application?: string;
  interfaces: PcapngInterface[];
  packets: PcapngPacket[];
}

function options(buf: Buffer, from: number, to: number): { code: number; value: Buffer }[] {
  const out: { code: number; value: Buffer }[] = [];
  let at = from;
  while (at + 4 <= to) {
    const code = buf.readUInt16LE(at);
    const length = buf.readUInt16LE(at + 2);
    if (code === 0) break;
    out.push({ code, value: buf.subarray(at + 4, at + 4 + length) });
    at += 4 + ((length + 3) & ~3);
  }
  return out;
}

export function parsePcapng(buf: Buffer): Pcapng {
  const result: Pcapng = { interfaces: [], packets: [] };
  let at = 0;
  let first = true;
  while (at < buf.length) {
    if (at + 12 > buf.length) throw new Error(`truncated block header at ${at}`);
    const type = buf.readUInt32LE(at);
    const length = buf.readUInt32LE(at + 4);
    if (length < 12 || length % 4 !== 0 || at + length > buf.length) throw new Error(`bad block length ${length} at ${at}`);
    if (buf.readUInt32LE(at + length - 4) !== length) throw new Error(`trailing length mismatch at ${at}`);
    const body = at + 8;
    const end = at + length - 4;
    if (first && type !== 0x0a0d0d0a) throw new Error('not pcapng: the first block is not a section header');
    first = false;
    if (type === 0x0a0d0d0a) {
      if (buf.readUInt32LE(body) !== 0x1a2b3c4d) throw new Error('not a little-endian section');
      for (const o of options(buf, body + 16, end)) if (o.code === 4) result.application = o.value.toString('utf8');
    } else if (type === 1) {
      const iface: PcapngInterface = { linkType: buf.readUInt16LE(body) };
      for (const o of options(buf, body + 8, end)) {
        if (o.code === 2) iface.name = o.value.toString('utf8');
        if (o.code === 9) iface.tsresol = o.value[0];
      }
      result.interfaces.push(iface);
    } else if (type === 6) {
      const interfaceId = buf.readUInt32LE(body);
      const timestamp = buf.readUInt32LE(body + 4) * 0x1_0000_0000 + buf.readUInt32LE(body + 8);
      const captured = buf.readUInt32LE(body + 12);
      const packet: PcapngPacket = {
        interfaceId,
        interfaceName: result.interfaces[interfaceId]?.name,
        timestamp,
        data: Buffer.from(buf.subarray(body + 20, body + 20 + captured)),
        originalLength: buf.readUInt32LE(body + 16),
        comments: [],
        direction: 0,
      };
      for (const o of options(buf, body + 20 + ((captured + 3) & ~3), end)) {
        if (o.code === 1) packet.comments.push(o.value.toString('utf8'));
        if (o.code === 2) packet.direction = o.value.readUInt32LE(0) & 3;
      }
      result.packets.push(packet);
    }
    at += length;
  }
  return result;
}
