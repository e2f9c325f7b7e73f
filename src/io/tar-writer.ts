/**
 * A minimal POSIX ustar writer for webdataset shards: regular files only, fixed owner, mode and
 * mtime, so the same samples always give the same bytes. Python's tarfile, GNU tar and the
 * webdataset readers read it.
 */
import type { FileHandle } from "node:fs/promises";

const BLOCK = 512;
/** GNU tar and Python's tarfile pad archives to 20 blocks; some strict readers expect it. */
const RECORD = 20 * BLOCK;
const WRITE_BUFFER_BYTES = 1 << 20;

export class TarWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;

  constructor(private readonly file: FileHandle) {}

  async add(name: string, data: Uint8Array): Promise<void> {
    this.push(tarHeader(name, data.length));
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const padding = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (padding > 0) this.push(Buffer.alloc(padding));
    if (this.pendingBytes >= WRITE_BUFFER_BYTES) await this.flush();
  }

  /**
   * Whole members of another archive (headers, data and padding), as they are. They are written
   * before this returns, so the caller may reuse the buffer.
   */
  async copyMembers(bytes: Uint8Array): Promise<void> {
    await this.flush();
    await this.file.write(bytes);
    this.written += bytes.length;
  }

  /** The two zero blocks that end an archive, padded to a whole record. */
  async finish(): Promise<void> {
    const end = this.written + this.pendingBytes + 2 * BLOCK;
    this.push(Buffer.alloc(2 * BLOCK + ((RECORD - (end % RECORD)) % RECORD)));
    await this.flush();
  }

  private push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    await this.file.writev(this.pending);
    this.written += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
  }
}

export function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  const nameBytes = Buffer.from(name, "utf8");
  if (nameBytes.length > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  nameBytes.copy(header, 0);
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, 0);
  header.fill(0x20, 148, 156);
  header.write("0", 156, "latin1");
  header.write("ustar\u000000", 257, "latin1");
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, "0")}\u0000 `, 148, "latin1");
  return header;
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, "0")}\u0000`, offset, "latin1");
}
