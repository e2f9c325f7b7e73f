/**
 * Where a thread's time went, from a V8 CPU profile (`node --cpu-prof`): each sample is charged
 * to the innermost frame of one of the project's files (src/…) on its stack, and that file to a
 * part named by the caller; samples with no project frame go to what V8 names them (garbage
 * collector, idle, program) or to "other" (start-up, Node's own modules).
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Share of the thread's sampled time per part, largest first; `parts` maps a file name to one. */
export function profileShares(
  profile: CpuProfile,
  parts: Record<string, string>,
): { part: string; share: number }[] {
  const parent = new Map<number, ProfileNode>();
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node);
  }
  const partOf = new Map<number, string>();
  const charge = (leaf: ProfileNode): string => {
    const known = partOf.get(leaf.id);
    if (known !== undefined) return known;
    let part: string | undefined;
    for (let node: ProfileNode | undefined = leaf; node !== undefined; node = parent.get(node.id)) {
      const url = node.callFrame.url;
      if (/\/src\//.test(url)) {
        part = parts[basename(new URL(url, "file:///").pathname)];
        if (part !== undefined) break;
      }
    }
    part ??= V8_PARTS[leaf.callFrame.functionName] ?? "other (start-up, Node's modules)";
    partOf.set(leaf.id, part);
    return part;
  };
  const time = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, at) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[at] ?? 0;
    if (node === undefined) return;
    const part = charge(node);
    time.set(part, (time.get(part) ?? 0) + delta);
    total += delta;
  });
  return [...time]
    .map(([part, spent]) => ({ part, share: spent / Math.max(total, 1) }))
    .sort((a, b) => b.share - a.share);
}

const V8_PARTS: Record<string, string> = {
  "(garbage collector)": "garbage collection",
  "(idle)": "idle (waiting)",
  "(program)": "V8 and native code",
};

/** The profile in `folder` with the most samples that holds a frame of `file` (the thread that ran it). */
export async function busiestProfile(folder: string, file: string): Promise<CpuProfile> {
  let best: CpuProfile | undefined;
  for (const name of await readdir(folder)) {
    if (!name.endsWith(".cpuprofile")) continue;
    const profile = JSON.parse(await readFile(join(folder, name), "utf8")) as CpuProfile;
    if (!profile.nodes.some((node) => node.callFrame.url.endsWith(`/${file}`))) continue;
    if (best === undefined || profile.samples.length > best.samples.length) best = profile;
  }
  if (best === undefined) throw new Error(`no CPU profile in ${folder} runs ${file}`);
  return best;
}
