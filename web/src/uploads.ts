/**
 * Uploaded (dropped, pasted) query images. The URL cannot carry the image, so it carries a short
 * content hash and the bytes stay in this tab's session storage: reload and back/forward find
 * them again; a shared link cannot (the page says so). Large images are shrunk before they are
 * stored and sent, since CLIP sees 224 pixels anyway.
 */
import { blobToBase64 } from "./api.js";

const PREFIX = "clipcrawl:upload:";
const MAX_SIDE = 1024;
const MAX_BYTES = 1_500_000;

export async function storeUpload(file: Blob): Promise<string> {
  const image = await shrink(file);
  const base64 = await blobToBase64(image);
  const ref = contentHash(base64);
  try {
    sessionStorage.setItem(PREFIX + ref, base64);
  } catch {
    // Session storage full or disabled: keep only the latest upload in memory.
    memory.clear();
  }
  memory.set(ref, base64);
  return ref;
}

export function loadUpload(ref: string): string | undefined {
  return memory.get(ref) ?? sessionStorage.getItem(PREFIX + ref) ?? undefined;
}

const memory = new Map<string, string>();

async function shrink(file: Blob): Promise<Blob> {
  if (file.size <= MAX_BYTES) return file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d")?.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => {
    canvas.toBlob((blob) => resolve(blob ?? file), "image/jpeg", 0.9);
  });
}

/** FNV-1a, 2 × 32 bits: a short name for the bytes (crypto.subtle is missing on plain http). */
function contentHash(text: string): string {
  let first = 0x811c9dc5;
  let second = 0x01000193;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    first = Math.imul(first ^ code, 0x01000193);
    second = Math.imul(second ^ code, 0x01000193) ^ (first >>> 7);
  }
  return (first >>> 0).toString(16).padStart(8, "0") + (second >>> 0).toString(16).padStart(8, "0");
}
