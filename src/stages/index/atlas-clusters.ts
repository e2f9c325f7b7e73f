/**
 * The map's regions: k-means over the laid-out points' 2-D coordinates (k-means++ seeding), every
 * point given its nearest centre, and each cluster labelled by its most frequent caption words.
 * A word's count in a cluster is weighed by how few clusters use it (class-based TF-IDF, as
 * BERTopic labels topics), so words every caption has ("photo", "image") do not label them all.
 */
import type { AtlasCluster } from "../../formats/atlas/atlas-files.js";

const LABEL_WORDS = 3;

/** English function words and the words of web alt texts that say nothing of the picture. */
const STOPWORDS = new Set(
  (
    "the and for with from that this are was were been has have had not but you your our their " +
    "its his her they them she him who what which when where how all any can will into onto over " +
    "under about more most other some such than then there these those very also just out off " +
    "new one two per via des les der die das und von mit für une pour avec del los las por con " +
    "image images photo photos picture pictures jpg jpeg png gif webp thumbnail img pic pics " +
    "stock free download view click here size logo icon"
  ).split(" "),
);

/** k-means over interleaved x, y; returns the centres (interleaved) and each point's cluster. */
export function kMeans2d(
  points: Float32Array,
  k: number,
  random: () => number,
  iterations = 30,
): { centres: Float32Array; assignment: Uint16Array } {
  const count = points.length / 2;
  const clusters = Math.max(1, Math.min(k, count, 65_535));
  const centres = new Float32Array(clusters * 2);
  const assignment = new Uint16Array(count);
  if (count === 0) return { centres: new Float32Array(0), assignment };
  const first = Math.floor(random() * count);
  centres[0] = points[first * 2] as number;
  centres[1] = points[first * 2 + 1] as number;
  const nearest = new Float64Array(count).fill(Number.POSITIVE_INFINITY);
  for (let c = 1; c < clusters; c++) {
    let total = 0;
    for (let p = 0; p < count; p++) {
      const dx = (points[p * 2] as number) - (centres[(c - 1) * 2] as number);
      const dy = (points[p * 2 + 1] as number) - (centres[(c - 1) * 2 + 1] as number);
      nearest[p] = Math.min(nearest[p] as number, dx * dx + dy * dy);
      total += nearest[p] as number;
    }
    let target = random() * total;
    let chosen = count - 1;
    for (let p = 0; p < count; p++) {
      target -= nearest[p] as number;
      if (target <= 0) {
        chosen = p;
        break;
      }
    }
    centres[c * 2] = points[chosen * 2] as number;
    centres[c * 2 + 1] = points[chosen * 2 + 1] as number;
  }
  for (let iteration = 0; iteration < iterations; iteration++) {
    assignNearest(points, centres, assignment);
    const sums = new Float64Array(clusters * 3);
    for (let p = 0; p < count; p++) {
      const c = assignment[p] as number;
      sums[c * 3] = (sums[c * 3] as number) + (points[p * 2] as number);
      sums[c * 3 + 1] = (sums[c * 3 + 1] as number) + (points[p * 2 + 1] as number);
      sums[c * 3 + 2] = (sums[c * 3 + 2] as number) + 1;
    }
    for (let c = 0; c < clusters; c++) {
      const members = sums[c * 3 + 2] as number;
      if (members === 0) continue;
      centres[c * 2] = (sums[c * 3] as number) / members;
      centres[c * 2 + 1] = (sums[c * 3 + 1] as number) / members;
    }
  }
  assignNearest(points, centres, assignment);
  return { centres, assignment };
}

/** Each point's nearest centre into `assignment`. */
export function assignNearest(
  points: Float32Array,
  centres: Float32Array,
  assignment: Uint16Array,
): void {
  const clusters = centres.length / 2;
  for (let p = 0; p < assignment.length; p++) {
    const x = points[p * 2] as number;
    const y = points[p * 2 + 1] as number;
    let best = 0;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (let c = 0; c < clusters; c++) {
      const dx = x - (centres[c * 2] as number);
      const dy = y - (centres[c * 2 + 1] as number);
      const distance = dx * dx + dy * dy;
      if (distance < bestDistance) {
        bestDistance = distance;
        best = c;
      }
    }
    assignment[p] = best;
  }
}

/** The words of a caption that can label a cluster: lower case, letters, three or more. */
export function captionWords(caption: string): string[] {
  return caption
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length >= 3 && !/^\p{N}+$/u.test(word) && !STOPWORDS.has(word));
}

/**
 * The clusters with their labels: `captions[i]` belongs to cluster `clusterOf[i]` (a sample of
 * the points is enough); `points` counts every point of each cluster.
 */
export function labelClusters(
  centres: Float32Array,
  sizes: Uint32Array,
  captions: readonly (string | null)[],
  clusterOf: Uint16Array,
): AtlasCluster[] {
  const clusters = centres.length / 2;
  const counts = Array.from({ length: clusters }, () => new Map<string, number>());
  captions.forEach((caption, index) => {
    if (caption === null) return;
    const words = counts[clusterOf[index] as number] as Map<string, number>;
    for (const word of new Set(captionWords(caption))) words.set(word, (words.get(word) ?? 0) + 1);
  });
  const clustersUsing = new Map<string, number>();
  for (const words of counts) {
    for (const word of words.keys()) clustersUsing.set(word, (clustersUsing.get(word) ?? 0) + 1);
  }
  return counts.map((words, id) => {
    const ranked = [...words]
      .map(([word, count]) => ({
        word,
        score: count * Math.log(1 + clusters / (clustersUsing.get(word) ?? 1)),
        count,
      }))
      .sort((a, b) => b.score - a.score || b.count - a.count || (a.word < b.word ? -1 : 1))
      .slice(0, LABEL_WORDS)
      .map((entry) => entry.word);
    return {
      id,
      label: ranked.join(" · "),
      words: ranked,
      x: centres[id * 2] as number,
      y: centres[id * 2 + 1] as number,
      points: sizes[id] as number,
    };
  });
}
