/**
 * sha256, md5 and sha1 of an image's bytes as downloaded, computed chunk by chunk while the body
 * streams in: one pass over bytes that are still in the CPU cache, instead of three passes over
 * the whole body after it arrived. md5 and sha1 are kept so that takedown hash lists (Re-LAION's
 * among them) can be matched later.
 */
import { createHash, type Hash } from "node:crypto";

export interface ImageHashes {
  sha256: string;
  md5: string;
  sha1: string;
}

export class BodyHashes {
  private readonly sha256: Hash = createHash("sha256");
  private readonly md5: Hash = createHash("md5");
  private readonly sha1: Hash = createHash("sha1");

  update(chunk: Uint8Array): void {
    this.sha256.update(chunk);
    this.md5.update(chunk);
    this.sha1.update(chunk);
  }

  digest(): ImageHashes {
    return {
      sha256: this.sha256.digest("hex"),
      md5: this.md5.digest("hex"),
      sha1: this.sha1.digest("hex"),
    };
  }
}
