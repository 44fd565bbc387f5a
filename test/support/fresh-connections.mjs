// Preload for test files (scripts/test.ts): fetch() opens one connection per request. Under the
// suite's load an idle keep-alive socket left in the global pool (to a cutover or etcd that a test
// had already stopped, or just idle) was destroyed by the client's idle timer with an uncaught
// "InformationalError: socket idle timeout" after a file's last test (Node 24.22's bundled undici),
// failing the whole file. Loopback connections cost little; tests about keep-alive use their own agent.
import { Agent, setGlobalDispatcher } from 'undici';

setGlobalDispatcher(new Agent({ pipelining: 0 }));
