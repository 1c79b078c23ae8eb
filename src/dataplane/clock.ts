// The time source of the rate limits and the neighbour timers, in ms. The
// daemon runs on the monotonic clock; tests drive their own, so "500 packets
// in half a second" is exact and never depends on how busy the machine is.
export type Clock = () => number;

export const monotonicClock: Clock = () => performance.now();
