export * from './target.js';
export { StableServiceTarget } from './stable-service.js';
export { IngressTarget, type IngressTargetOptions } from './ingress.js';
export { HttpRouteTarget } from './httproute.js';
