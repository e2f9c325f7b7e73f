/**
 * A request the server refuses: answered with its status (400 unless said otherwise) and
 * `{"error": message, "field": name}`, the field when one is to blame. Handlers throw it; the
 * app's error handler turns it into the answer, so no bad input ever reaches a 5xx.
 */
import { ClipcrawlError } from "../errors.js";

export class RequestError extends ClipcrawlError {
  readonly field: string | undefined;
  readonly statusCode: number;

  constructor(field: string | undefined, message: string, statusCode = 400) {
    super("CC_BAD_REQUEST", message);
    this.name = "RequestError";
    this.field = field;
    this.statusCode = statusCode;
  }
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: string;
  field?: string;
}

export function errorBody(error: RequestError): ErrorBody {
  return error.field === undefined
    ? { error: error.message }
    : { error: error.message, field: error.field };
}
