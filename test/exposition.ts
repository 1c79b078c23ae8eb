// Reading a Prometheus text exposition (what vipr's /metrics serves), for the
// metrics tests in test/unit and test/lab.

import { expect } from 'vitest';

/** Every sample of a scrape by `name{label="value",...}` with the labels sorted, and the values as numbers. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels = match[2] ? [...match[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => `${m[1]}="${m[2]}"`).sort() : [];
    samples.set(labels.length ? `${match[1]}{${labels.join(',')}}` : match[1], Number(match[3]));
  }
  return samples;
}

/** The sample's key as parseExposition writes it. */
export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort();
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

/** The value of one sample; fails the test, naming the sample, when the scrape has no such series. */
export function sampleValue(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const k = sampleKey(name, labels);
  expect(samples.has(k), `scrape has ${k}`).toBe(true);
  return samples.get(k)!;
}
