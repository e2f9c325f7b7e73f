/**
 * kind "onnx": an ONNX graph over the L2-normalised CLIP embedding, [batch, dim] float → [batch]
 * or [batch, k]. LAION's CLIP-based NSFW detector (a Keras MLP ending in a sigmoid) and its
 * aesthetic predictor (a linear layer or MLP giving 0–10) are such graphs once converted to ONNX.
 * The graph's embedding size must be the CLIP model's: a head trained on ViT-L/14 (768-d) is
 * meaningless on ViT-B/32 (512-d), and is refused at load.
 */
import { ModelError } from "../model-error.js";
import { readScores } from "./head-readout.js";
import {
  declaredSize,
  type OnnxHeadModel,
  openOnnxHead,
  probeOnnxHead,
  runOnnxHead,
} from "./onnx-head-model.js";
import type { OnnxHeadConfig } from "./score-config.js";
import { embeddingsFor, type HeadInputs, type HeadScores, type ScoreHead } from "./score-head.js";

/** Rows of the probe batch: more than one, so a graph that fixed its batch at 1 is caught. */
const PROBE_ROWS = 2;

export class OnnxEmbeddingHead implements ScoreHead {
  readonly needsImageBytes = false;
  readonly files: readonly string[];

  private constructor(
    readonly name: string,
    readonly config: OnnxHeadConfig,
    readonly embeddingSize: number,
    readonly model: OnnxHeadModel,
  ) {
    this.files = [model.path];
  }

  static async load(
    name: string,
    config: OnnxHeadConfig,
    path: string,
    context: { embeddingSize: number; threads: number },
  ): Promise<OnnxEmbeddingHead> {
    const model = await openOnnxHead(name, path, {
      inputName: config.inputName,
      output: config.output,
      threads: context.threads,
    });
    try {
      if (model.inputShape.length > 0 && model.inputShape.length !== 2) {
        throw new ModelError(
          "CC_MODEL_INPUT",
          `${model.label}: input ${model.input} has shape [${model.inputShape.join(", ")}], expected [batch, ${context.embeddingSize}]`,
        );
      }
      const declared = declaredSize(model, 1);
      if (declared !== undefined && declared !== context.embeddingSize) {
        throw new ModelError(
          "CC_MODEL_EMBEDDING_SIZE",
          `${model.label}: input ${model.input} takes ${declared}-d embeddings, the CLIP model's are ${context.embeddingSize}-d`,
        );
      }
      await probeOnnxHead(model, [PROBE_ROWS, context.embeddingSize], config.outputIndex);
      return new OnnxEmbeddingHead(name, config, context.embeddingSize, model);
    } catch (error) {
      await model.session.release();
      throw error;
    }
  }

  async score(inputs: HeadInputs): Promise<HeadScores> {
    const embeddings = embeddingsFor(inputs, this.config.input, this.embeddingSize);
    if (embeddings.rows === 0) return { values: [], errors: [] };
    const output = await runOnnxHead(this.model, embeddings.data, [
      embeddings.rows,
      embeddings.dimensions,
    ]);
    return readScores(this.name, output, {
      column: this.config.outputIndex,
      activation: this.config.activation,
      scale: this.config.scale,
    });
  }

  release(): Promise<void> {
    return this.model.session.release();
  }
}
