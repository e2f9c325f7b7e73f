/**
 * The image-size limit every decoder applies by default, apart from the decoder itself
 * (image-header.ts loads sharp) so the config schemas can name it without loading sharp.
 */

/** Pillow's decompression-bomb limit, download's default (`download.maxImagePixels`). */
export const DEFAULT_MAX_IMAGE_PIXELS = 89_478_485;
