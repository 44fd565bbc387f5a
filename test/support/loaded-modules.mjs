// Prints, as JSON, every module URL resolved while importing the module given as argument.
import { registerHooks } from 'node:module';

const seen = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    seen.add(resolved.url);
    return resolved;
  },
});
await import(process.argv[2]);
process.stdout.write(JSON.stringify([...seen]));
