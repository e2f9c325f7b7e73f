/**
 * The one error a model folder raises when it cannot be used: a missing or malformed file, a
 * graph without the expected inputs or outputs, towers that disagree. It stops the stage with one
 * line that names the file or folder; `code` says which kind of problem it is.
 */
import { ClipcrawlError } from "../errors.js";

export type ModelErrorCode =
  | "CC_MODEL_MISSING_FILE"
  | "CC_MODEL_INVALID_FILE"
  | "CC_MODEL_INPUT"
  | "CC_MODEL_OUTPUT"
  | "CC_MODEL_EMBEDDING_SIZE"
  | "CC_MODEL_UNSUPPORTED"
  | "CC_MODEL_DEVICE";

export class ModelError extends ClipcrawlError {
  declare readonly code: ModelErrorCode;

  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "ModelError";
  }
}
