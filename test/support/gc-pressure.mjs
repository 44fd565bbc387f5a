// Preload for tests (`node --expose-gc --import ./test/support/gc-pressure.mjs …`): a full garbage
// collection every 500 ms, so that code which only works while the GC leaves something alone (a
// timer or signal held by nothing but a weak reference, e.g. AbortSignal.timeout() inside
// AbortSignal.any() on Node 20, nodejs/node#57736) fails in the tests instead of in production.
// It has to be a full GC: minor GCs (gc({type: 'minor'})) do not lose that timer.
//
// Why 500 ms and not 100: one full GC of a test process (cutover's modules loaded, 80-100 MB heap)
// takes about 80 ms, so every 100 ms is nearly continuous collection. On three integration files
// (process-lifecycle, deployments, descriptors-api; 2 cores) the wall time was 59-61 s without it,
// 67 s at 1000 ms, 68 s at 500 ms, 137 s at 250 ms and 320 s at 100 ms. At 500 ms a lost timer of
// 500 ms or more is always caught, a shorter one most of the time.
//
// Without --expose-gc it does nothing. CUTOVER_TEST_GC_INTERVAL_MS sets the interval (0: off).
// The interval is unref'd: it never keeps a process alive.
const DEFAULT_INTERVAL_MS = 500;
const gc = globalThis.gc;
const setting = process.env.CUTOVER_TEST_GC_INTERVAL_MS;
const intervalMs = setting === undefined || setting === '' ? DEFAULT_INTERVAL_MS : Number(setting);
if (typeof gc === 'function' && Number.isFinite(intervalMs) && intervalMs > 0) {
  setInterval(() => gc(), intervalMs).unref();
}
