/**
 * The `error_message` of a download that failed below HTTP, from the error's code. undici's codes
 * (`UND_ERR_…`) say little to a person, so each gets a reason in words with the code kept in
 * parentheses, as `invalid gzip body (Z_DATA_ERROR)` is written: the message stays one fixed text
 * per code, so stats histograms still group by it. Node's own codes (`ECONNREFUSED`,
 * `ENOTFOUND`) are recorded as they are: they are what people search for.
 */

/** Every undici code a GET through an Agent can end with (undici/lib/core/errors.js). */
const UNDICI_REASONS: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: "no connection in time",
  UND_ERR_HEADERS_TIMEOUT: "no response headers in time",
  UND_ERR_BODY_TIMEOUT: "body stalled: no data in time",
  UND_ERR_HEADERS_OVERFLOW: "response headers too large",
  UND_ERR_RES_EXCEEDED_MAX_SIZE: "response larger than allowed",
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: "body length differs from its Content-Length",
  UND_ERR_SOCKET: "connection closed before the response ended",
  UND_ERR_CLOSED: "download stopped: client closed",
  UND_ERR_DESTROYED: "download stopped: client destroyed",
  UND_ERR_ABORTED: "request aborted",
  UND_ERR_ABORT: "request aborted",
  UND_ERR_INFO: "invalid informational (1xx) response",
  UND_ERR_INVALID_ARG: "request refused by the HTTP client",
  UND_ERR_INVALID_RETURN_VALUE: "request refused by the HTTP client",
  UND_ERR_NOT_SUPPORTED: "not supported by the HTTP client",
  UND_ERR_RESPONSE: "error response",
};

/** `reason (CODE)` for an undici code, else the code as it is. */
export function failureReason(code: string): string {
  const reason = UNDICI_REASONS[code];
  if (reason !== undefined) return `${reason} (${code})`;
  if (code.startsWith("UND_ERR")) return `HTTP client error (${code})`;
  return code;
}
