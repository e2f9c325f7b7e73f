/**
 * kind "zero-shot": CLIP's zero-shot classification with prompt sets as the classes. Every prompt
 * is embedded once, at load, with the model's text tower; a row's score is the softmax over all
 * prompts of cosine × temperature, summed over the positive prompts, times the scale. This is the
 * default for every score: it needs no model beyond CLIP, and its prompts are config.
 */
import type { ClipModel } from "../clip-model.js";
import { ClipEmbedder } from "../embedder.js";
import { readScores, softmax } from "./head-readout.js";
import type { ZeroShotHeadConfig } from "./score-config.js";
import { embeddingsFor, type HeadInputs, type HeadScores, type ScoreHead } from "./score-head.js";

export class ZeroShotHead implements ScoreHead {
  readonly needsImageBytes = false;
  readonly files: readonly string[] = [];

  private constructor(
    readonly name: string,
    readonly config: ZeroShotHeadConfig,
    /** Unit-length prompt embeddings, positives first, row-major [prompts, dim]. */
    readonly prompts: Float32Array,
    readonly embeddingSize: number,
  ) {}

  static async load(
    name: string,
    config: ZeroShotHeadConfig,
    model: ClipModel,
  ): Promise<ZeroShotHead> {
    const embedder = new ClipEmbedder(model);
    const { embeddings } = await embedder.embedTexts([...config.positive, ...config.negative]);
    return new ZeroShotHead(name, config, embeddings.data, embeddings.dimensions);
  }

  async score(inputs: HeadInputs): Promise<HeadScores> {
    const embeddings = embeddingsFor(inputs, this.config.input, this.embeddingSize);
    const promptCount = this.config.positive.length + this.config.negative.length;
    const probabilities = new Float64Array(embeddings.rows);
    const logits = new Array<number>(promptCount);
    for (let row = 0; row < embeddings.rows; row++) {
      const offset = row * this.embeddingSize;
      for (let prompt = 0; prompt < promptCount; prompt++) {
        let cosine = 0;
        for (let column = 0; column < this.embeddingSize; column++) {
          cosine +=
            (embeddings.data[offset + column] as number) *
            (this.prompts[prompt * this.embeddingSize + column] as number);
        }
        logits[prompt] = cosine * this.config.temperature;
      }
      probabilities[row] = softmax(logits)
        .slice(0, this.config.positive.length)
        .reduce((sum, probability) => sum + probability, 0);
    }
    return readScores(
      this.name,
      { rows: embeddings.rows, columns: 1, data: probabilities },
      { column: 0, activation: "none", scale: this.config.scale },
    );
  }

  async release(): Promise<void> {}
}
