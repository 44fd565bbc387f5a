/** esbuild bundles imported CSS into the build's one stylesheet. */
declare module '*.css';
