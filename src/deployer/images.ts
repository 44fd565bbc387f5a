import type { DeployedImage } from '../domain/deployment.js';
import type { Descriptor } from '../domain/types.js';

const DIGEST = /@(sha256:[0-9a-f]{64})$/;

/**
 * The images a version's pods run, with the digest each tag resolved to: the kubelet reports it in
 * `containerStatuses[].imageID` ("docker-pullable://repo@sha256:…", "repo@sha256:…"). A tag can
 * move; the digest is what was tested, and what a promotion deploys.
 */
export function deployedImages(descriptor: Descriptor, pods: Array<{ imageIds?: Record<string, string> }>): DeployedImage[] {
  return descriptor.podspec.containers.map((c) => {
    const own = DIGEST.exec(c.image)?.[1];
    const reported = new Set(pods.map((p) => DIGEST.exec(p.imageIds?.[c.name] ?? '')?.[1]).filter((d): d is string => d !== undefined));
    // Pods that disagree (the tag moved while they pulled) pin nothing: no digest is "the" one.
    const digest = own ?? (reported.size === 1 ? [...reported][0] : undefined);
    return { container: c.name, image: c.image, ...(digest ? { digest } : {}) };
  });
}

/** The descriptor with each image pinned to the digest it was deployed with ("repo:tag@sha256:…"). */
export function pinnedDescriptor(descriptor: Descriptor, images: DeployedImage[] | undefined): Descriptor {
  if (!images?.some((i) => i.digest)) return descriptor;
  const containers = descriptor.podspec.containers.map((c) => {
    const digest = images.find((i) => i.container === c.name && i.image === c.image)?.digest;
    return digest && !DIGEST.test(c.image) ? { ...c, image: `${c.image}@${digest}` } : c;
  });
  return { ...descriptor, podspec: { ...descriptor.podspec, containers } };
}
