/**
 * The optional bearer token of the routes that change data on the server (export jobs write
 * files; a removal endpoint would too): with a token configured, such a request must carry
 * `Authorization: Bearer <token>`, compared in constant time; without one, they are open, as
 * clip-back's routes are. Read-only routes never ask for it.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { RequestError } from "./request-error.js";

export function requireToken(
  token: string | undefined,
): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = token === undefined || token === "" ? undefined : digest(token);
  return async (request, reply) => {
    if (expected === undefined) return;
    const header = request.headers.authorization ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (match === null || !timingSafeEqual(digest(match[1] as string), expected)) {
      reply.header("www-authenticate", 'Bearer realm="clipcrawl"');
      throw new RequestError(
        "authorization",
        match === null ? "this route needs Authorization: Bearer <token>" : "wrong bearer token",
        401,
      );
    }
  };
}

/** Equal-length buffers for timingSafeEqual, whatever the lengths of the tokens. */
function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
