/**
 * Typed errors with a stable `code`, as undici does: callers branch on the code, and the code is
 * what lands in `status` / `error_message` columns and in stats histograms.
 */
export class ClipcrawlError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClipcrawlError";
    this.code = code;
  }
}

/** A bad value in clipcrawl.json or on the command line. */
export class ConfigError extends ClipcrawlError {
  constructor(message: string) {
    super("CC_CONFIG", message);
    this.name = "ConfigError";
  }
}

/** One input of a stage (a WAT file, a URL list) could not be read; the other inputs go on. */
export class InputError extends ClipcrawlError {
  readonly input: string;

  constructor(code: string, input: string, message: string, options?: { cause?: unknown }) {
    super(code, `${input}: ${message}`, options);
    this.name = "InputError";
    this.input = input;
  }
}

/** The message of anything thrown, on one line. */
export function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, " ").trim();
}
