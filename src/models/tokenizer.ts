/**
 * Caption tokenisation with a model's own `tokenizer.json`, through Hugging Face's JavaScript
 * tokenizers (`@huggingface/tokenizers`, the tokenizer half of transformers.js, pure JS, offline).
 * CLIP's BPE and a multilingual text model's tokenizer (XLM-R's `<s>`, `</s>`, `<pad>`) alike:
 * the special tokens and the context length come from the folder's configs.
 *
 * Captions longer than the context length are truncated as CLIP truncates them: the start token,
 * the first `contextLength − 2` tokens of the caption, then the end token, so that a model that
 * pools at the end token still finds it. Batches are padded with the tokenizer's pad token (CLIP's
 * is the end token) and come with an attention mask.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { ModelError } from "./model-error.js";
import { readModelJson } from "./model-files.js";

/** Hugging Face writes a huge `model_max_length` when a tokenizer has no limit of its own. */
const UNSET_MAX_LENGTH = 1e15;

export interface EncodedCaption {
  ids: number[];
  /** The caption had more tokens than the context holds. */
  truncated: boolean;
}

/** Token ids of a batch, row-major [batchSize, sequenceLength], ready for an int64 tensor. */
export interface TokenBatch {
  batchSize: number;
  sequenceLength: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  truncated: boolean[];
}

export interface TokenizerFiles {
  tokenizer: string;
  tokenizerConfig: string;
  /**
   * config.json, whose text_config.max_position_embeddings (CLIP) or max_position_embeddings (a
   * text-only model) bounds the context.
   */
  config?: string;
}

export class ClipTokenizer {
  readonly #tokenizer: Tokenizer;
  readonly contextLength: number;
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;

  private constructor(tokenizer: Tokenizer, contextLength: number, ids: [number, number, number]) {
    this.#tokenizer = tokenizer;
    this.contextLength = contextLength;
    [this.startId, this.endId, this.padId] = ids;
  }

  static async load(files: TokenizerFiles): Promise<ClipTokenizer> {
    const tokenizerJson = await readModelJson(files.tokenizer);
    const tokenizerConfig = await readModelJson(files.tokenizerConfig);
    const modelConfig = files.config ? await readModelJson(files.config) : {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ModelError("CC_MODEL_INVALID_FILE", `${files.tokenizer}: ${reason}`, {
        cause: error,
      });
    }
    const tokenId = (key: string, fallback?: string) => {
      const token = tokenText(tokenizerConfig[key]) ?? fallback;
      const id = token === undefined ? undefined : tokenizer.token_to_id(token);
      if (id === undefined) {
        throw new ModelError(
          "CC_MODEL_INVALID_FILE",
          `${files.tokenizerConfig}: ${key} ${token ?? "(none)"} is not in the vocabulary`,
        );
      }
      return id;
    };
    const startId = tokenId("bos_token");
    const endId = tokenId("eos_token");
    const padId = tokenId("pad_token", tokenText(tokenizerConfig.eos_token));
    const contextLength = contextLengthOf(tokenizerConfig, modelConfig);
    if (contextLength === undefined || contextLength < 2) {
      throw new ModelError(
        "CC_MODEL_INVALID_FILE",
        `${files.tokenizerConfig}: no usable context length (model_max_length)`,
      );
    }
    return new ClipTokenizer(tokenizer, contextLength, [startId, endId, padId]);
  }

  /** Start token, the caption's tokens (truncated to fit), end token. */
  encode(caption: string): EncodedCaption {
    const ids = this.#tokenizer.encode(caption, { add_special_tokens: false }).ids;
    const room = this.contextLength - 2;
    const truncated = ids.length > room;
    return {
      ids: [this.startId, ...(truncated ? ids.slice(0, room) : ids), this.endId],
      truncated,
    };
  }

  /**
   * Encodes a batch, padded to its longest caption, or to `padTo` (a model with a fixed sequence
   * length needs exactly that many tokens).
   */
  encodeBatch(captions: readonly string[], padTo?: number): TokenBatch {
    const encoded = captions.map((caption) => this.encode(caption));
    const longest = Math.max(0, ...encoded.map(({ ids }) => ids.length));
    const sequenceLength = padTo ?? longest;
    if (sequenceLength < longest) {
      throw new RangeError(`cannot pad ${longest} tokens to ${sequenceLength}`);
    }
    const inputIds = new BigInt64Array(captions.length * sequenceLength).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(captions.length * sequenceLength);
    encoded.forEach(({ ids }, row) => {
      ids.forEach((id, column) => {
        inputIds[row * sequenceLength + column] = BigInt(id);
        attentionMask[row * sequenceLength + column] = 1n;
      });
    });
    return {
      batchSize: captions.length,
      sequenceLength,
      inputIds,
      attentionMask,
      truncated: encoded.map(({ truncated }) => truncated),
    };
  }

  /** The text of some token ids, special tokens left out. */
  decode(ids: readonly number[]): string {
    return this.#tokenizer.decode([...ids], { skip_special_tokens: true }).trim();
  }

  /** The tokens a caption becomes, without the special tokens (for diagnostics and tests). */
  tokens(caption: string): string[] {
    return this.#tokenizer.tokenize(caption);
  }
}

/** A token in tokenizer_config.json is a string or an AddedToken object with `content`. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && "content" in value) {
    const content = (value as { content: unknown }).content;
    return typeof content === "string" ? content : undefined;
  }
  return undefined;
}

function contextLengthOf(
  tokenizerConfig: Record<string, unknown>,
  modelConfig: Record<string, unknown>,
): number | undefined {
  const limits: number[] = [];
  const fromTokenizer = tokenizerConfig.model_max_length;
  if (typeof fromTokenizer === "number" && fromTokenizer < UNSET_MAX_LENGTH) {
    limits.push(fromTokenizer);
  }
  const textConfig = modelConfig.text_config;
  const positions =
    typeof textConfig === "object" && textConfig !== null
      ? (textConfig as Record<string, unknown>).max_position_embeddings
      : modelConfig.max_position_embeddings;
  if (typeof positions === "number") limits.push(positions);
  return limits.length === 0 ? undefined : Math.min(...limits);
}
