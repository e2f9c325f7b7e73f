/**
 * Captions → text embeddings, each through the tower its language tier calls for: LAION-5B
 * embedded English captions with CLIP's text tower and the others with a multilingual text
 * model trained into the same space (M-CLIP). Rows come back in input order, whichever tower
 * embedded them.
 */
import type { EmbeddingMatrix } from "../../models/clip-model.js";
import type { TextEmbeddings } from "../../models/embedder.js";

export type TextTowerName = "clip" | "multilingual";

export interface CaptionInput {
  text: string;
  /** extract's language tier (`en`, `multi`, `nolang`); null when the sample does not say. */
  tier: string | null;
}

export interface CaptionEmbeddings extends TextEmbeddings {
  /** Per caption: which tower embedded it. */
  towers: TextTowerName[];
}

interface TextEncoder {
  embedTexts(captions: readonly string[]): Promise<TextEmbeddings>;
}

export class CaptionEncoder {
  constructor(
    private readonly clip: TextEncoder,
    private readonly multilingual?: { encoder: TextEncoder; tiers: readonly string[] },
  ) {}

  async embedCaptions(captions: readonly CaptionInput[]): Promise<CaptionEmbeddings> {
    const towers = captions.map(
      (caption): TextTowerName =>
        this.multilingual !== undefined &&
        caption.tier !== null &&
        this.multilingual.tiers.includes(caption.tier)
          ? "multilingual"
          : "clip",
    );
    const positions = { clip: [] as number[], multilingual: [] as number[] };
    for (const [position, tower] of towers.entries()) positions[tower].push(position);
    if (positions.multilingual.length === 0 || this.multilingual === undefined) {
      const embedded = await this.clip.embedTexts(captions.map((caption) => caption.text));
      return { ...embedded, towers };
    }
    // One after the other: each tower's session already uses every intra-op thread.
    const clip = await this.#embedAt(this.clip, captions, positions.clip);
    const multilingual = await this.#embedAt(
      this.multilingual.encoder,
      captions,
      positions.multilingual,
    );
    const dimensions = multilingual.embeddings.dimensions;
    const data = new Float32Array(captions.length * dimensions);
    const truncated: boolean[] = new Array(captions.length).fill(false);
    const place = (part: TextEmbeddings, at: readonly number[]) => {
      at.forEach((position, row) => {
        data.set(
          part.embeddings.data.subarray(row * dimensions, (row + 1) * dimensions),
          position * dimensions,
        );
        truncated[position] = part.truncated[row] ?? false;
      });
    };
    place(clip, positions.clip);
    place(multilingual, positions.multilingual);
    const embeddings: EmbeddingMatrix = { rows: captions.length, dimensions, data };
    return { embeddings, truncated, towers };
  }

  async #embedAt(
    encoder: TextEncoder,
    captions: readonly CaptionInput[],
    positions: readonly number[],
  ): Promise<TextEmbeddings> {
    if (positions.length === 0) {
      return {
        embeddings: { rows: 0, dimensions: 0, data: new Float32Array(0) },
        truncated: [],
      };
    }
    return encoder.embedTexts(
      positions.map((position) => (captions[position] as CaptionInput).text),
    );
  }
}
