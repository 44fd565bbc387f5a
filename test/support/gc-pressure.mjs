// Preload for tests (`node --expose-gc --import ./test/support/gc-pressure.mjs …`): a full garbage
// collection every 100 ms, so that code which only works while the GC leaves something alone (a
// timer or signal held by nothing but a weak reference, e.g. AbortSignal.timeout() inside
// AbortSignal.any() on Node 20, nodejs/node#57736) fails in the tests instead of in production.
// Without --expose-gc it does nothing; CUTOVER_TEST_GC_INTERVAL_MS=0 turns it off, another number
// changes the interval. The interval is unref'd: it never keeps a process alive.
const gc = globalThis.gc;
const setting = process.env.CUTOVER_TEST_GC_INTERVAL_MS;
const intervalMs = setting === undefined || setting === '' ? 100 : Number(setting);
if (typeof gc === 'function' && Number.isFinite(intervalMs) && intervalMs > 0) {
  setInterval(() => gc(), intervalMs).unref();
}
