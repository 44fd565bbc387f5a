// Preload for tests (`node --expose-gc --import ./test/support/gc-pressure.mjs …`): a major garbage
// collection every 2 s in test files, every second in cutover processes and every 100 ms where a test
// asks (test/support/process.ts, CUTOVER_TEST_GC_INTERVAL_MS), so that code which only works while the GC leaves something alone (a
// timer or signal held by nothing but a weak reference, e.g. AbortSignal.timeout() inside
// AbortSignal.any() on Node 20, nodejs/node#57736) fails in the tests instead of in production.
//
// The collection is a major one started concurrently (gc({type: 'major', execution: 'async'})):
// it loses such a weak timer exactly as a blocking full GC does (checked on Node 20: the timeout
// never fires), while a blocking full GC of a test process takes ~80 ms — every 100 ms that made
// three integration files 5× slower — and a minor GC does not lose the timer at all. Started
// concurrently a major GC still costs ~100 ms of CPU (helper threads) in a cutover process and more
// in a test process: every 100 ms everywhere made the whole suite take 26 minutes instead of ~10.
//
// Without --expose-gc it does nothing. CUTOVER_TEST_GC_INTERVAL_MS sets the interval (0: off).
// The interval is unref'd: it never keeps a process alive.
const DEFAULT_INTERVAL_MS = 2000;
const gc = globalThis.gc;
const setting = process.env.CUTOVER_TEST_GC_INTERVAL_MS;
const intervalMs = setting === undefined || setting === '' ? DEFAULT_INTERVAL_MS : Number(setting);
if (typeof gc === 'function' && Number.isFinite(intervalMs) && intervalMs > 0) {
  setInterval(() => gc({ type: 'major', execution: 'async' }), intervalMs).unref();
}
