/**
 * The direct members of one small JSON object inside a large buffer, read by a byte scan, so a
 * reader can take a few fields of a WAT record (Container, WARC-Header-Metadata, Head) in
 * whatever order their keys come without parsing the whole record. Values are decoded only for
 * the wanted keys; nested objects and arrays are stepped over.
 */

export type JsonMemberValue = string | null;

/** The wanted keys found: a string value, or null for a value of another kind. */
export type JsonMembers = Map<string, JsonMemberValue>;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;

/**
 * The wanted members of the object whose `{` is at `open` (a later duplicate key wins, as in
 * JSON.parse); undefined when the bytes are not a well-formed object.
 */
export function scanObjectMembers(
  body: Buffer,
  open: number,
  wanted: ReadonlySet<string>,
): JsonMembers | undefined {
  if (body[open] !== OPEN_BRACE) return undefined;
  const members: JsonMembers = new Map();
  let cursor = skipWhitespace(body, open + 1);
  if (body[cursor] === CLOSE_BRACE) return members;
  for (;;) {
    if (body[cursor] !== QUOTE) return undefined;
    const keyEnd = stringEnd(body, cursor);
    if (keyEnd < 0) return undefined;
    const key = decodeString(body, cursor, keyEnd);
    cursor = skipWhitespace(body, keyEnd + 1);
    if (body[cursor] !== COLON || key === undefined) return undefined;
    const valueStart = skipWhitespace(body, cursor + 1);
    const valueEnd = valueEndAt(body, valueStart);
    if (valueEnd < 0) return undefined;
    if (wanted.has(key)) {
      const value =
        body[valueStart] === QUOTE ? decodeString(body, valueStart, valueEnd - 1) : null;
      if (value === undefined) return undefined;
      members.set(key, value);
    }
    cursor = skipWhitespace(body, valueEnd);
    if (body[cursor] === CLOSE_BRACE) return members;
    if (body[cursor] !== COMMA) return undefined;
    cursor = skipWhitespace(body, cursor + 1);
  }
}

/** Index of the closing quote of the string opening at `open`, or -1. */
export function stringEnd(body: Buffer, open: number): number {
  let close = body.indexOf(QUOTE, open + 1);
  while (close > 0 && isEscaped(body, close)) close = body.indexOf(QUOTE, close + 1);
  return close;
}

/** Whether the quote at `quote` is escaped (an odd run of backslashes before it). */
export function isEscaped(body: Buffer, quote: number): boolean {
  let backslashes = 0;
  for (let i = quote - 1; i >= 0 && body[i] === BACKSLASH; i--) backslashes++;
  return backslashes % 2 === 1;
}

/** Index just past the value starting at `start`, or -1 when it is not well-formed. */
function valueEndAt(body: Buffer, start: number): number {
  const first = body[start];
  if (first === QUOTE) {
    const close = stringEnd(body, start);
    return close < 0 ? -1 : close + 1;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) return nestedEnd(body, start);
  // A number, true, false or null: runs up to the next delimiter.
  let cursor = start;
  while (cursor < body.length && isScalarByte(body[cursor] as number)) cursor++;
  return cursor === start ? -1 : cursor;
}

function nestedEnd(body: Buffer, start: number): number {
  let depth = 0;
  for (let cursor = start; cursor < body.length; cursor++) {
    const byte = body[cursor];
    if (byte === QUOTE) {
      cursor = stringEnd(body, cursor);
      if (cursor < 0) return -1;
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      depth++;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return cursor + 1;
    }
  }
  return -1;
}

function decodeString(body: Buffer, open: number, close: number): string | undefined {
  if (!body.subarray(open + 1, close).includes(BACKSLASH)) {
    return body.toString("utf8", open + 1, close);
  }
  try {
    return JSON.parse(body.toString("utf8", open, close + 1)) as string;
  } catch {
    return undefined;
  }
}

function isScalarByte(byte: number): boolean {
  return (
    byte !== COMMA &&
    byte !== CLOSE_BRACE &&
    byte !== CLOSE_BRACKET &&
    byte !== 0x20 &&
    byte !== 0x0a &&
    byte !== 0x0d &&
    byte !== 0x09
  );
}

function skipWhitespace(body: Buffer, from: number): number {
  let cursor = from;
  for (;;) {
    const byte = body[cursor];
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) return cursor;
    cursor++;
  }
}
