import type { Descriptor, Routing } from '../domain/types.js';
import { parseGatewayRef } from './manifests.js';
import type { RoutingPlan } from './traffic/index.js';

export interface RoutingConfig {
  /** CUTOVER_ROUTING: what a descriptor without `routing` gets. */
  defaultRouting: Routing;
  /** CUTOVER_GATEWAY: the Gateway of HTTPRoutes whose descriptor names none. */
  gateway?: string;
  versionHeader?: string;
}

/** Which routes an app's frontend gets: the descriptor's choice, else the configured default. */
export function routingPlan(d: Descriptor, config: RoutingConfig): RoutingPlan {
  const mode = d.routing ?? config.defaultRouting;
  const gateway = d.gateway ?? config.gateway;
  return {
    ingress: mode !== 'httproute',
    httproute: mode !== 'ingress',
    ...(gateway ? { parent: parseGatewayRef(gateway) } : {}),
    ...(config.versionHeader ? { versionHeader: config.versionHeader } : {}),
  };
}
