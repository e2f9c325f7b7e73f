/**
 * Coloured-shape images for the bundled sample: the picture behind every
 * `https://shapes.clipcrawl-sample.test/img/<colour>-<shape>-<index>.jpg` URL the WAT generator
 * writes. The demo's local image server serves them, and the tiny fixture CLIP model is designed
 * to see their colour and shape.
 *
 * Each image is a pure function of (colour, shape, index, size): the index seeds the shade of the
 * colour, the background tint, the shape's size and its position, so the sample has variety but
 * the same URL always gives the same bytes. Shapes stay upright and clear of the border, on a
 * light background (a dark one for white shapes), as the sample's alt texts describe them.
 */
import sharp from "sharp";
import { mixSeed, SeededRandom, SHAPE_COLOURS, SHAPE_NAMES } from "./wat-generator.js";

export type ShapeColour = (typeof SHAPE_COLOURS)[number];
export type ShapeName = (typeof SHAPE_NAMES)[number];
export type Rgb = readonly [number, number, number];
export type ShapeImageFormat = "jpeg" | "png";

/** The canonical sRGB value of each colour; rendered shades vary a little around it. */
export const SHAPE_PALETTE: Readonly<Record<ShapeColour, Rgb>> = {
  red: [214, 40, 40],
  green: [42, 157, 63],
  blue: [31, 95, 214],
  yellow: [242, 210, 27],
  purple: [123, 47, 190],
  orange: [244, 124, 32],
  black: [24, 24, 24],
  white: [255, 255, 255],
};

const LIGHT_BACKGROUNDS: readonly Rgb[] = [
  [255, 255, 255],
  [248, 246, 240],
  [242, 245, 248],
  [246, 246, 246],
  [250, 247, 236],
];
const DARK_BACKGROUNDS: readonly Rgb[] = [
  [18, 18, 18],
  [30, 30, 36],
  [10, 14, 24],
];

/** Most a channel of a shape's shade differs from the canonical colour. */
const SHADE_JITTER = 10;
/** The shape's bounding box spans this share of the image side. */
const MIN_EXTENT = 0.4;
const MAX_EXTENT = 0.7;
/** Share of the image side kept clear around the shape, so the border shows only background. */
const MARGIN = 0.1;
/** Inner radius of the five-pointed star as a share of its outer radius (a regular star). */
const STAR_INNER_RATIO = 0.382;

export interface ShapeImageRequest {
  colour: ShapeColour;
  shape: ShapeName;
  index: number;
}

/** Renders one coloured-shape image, `size` pixels square, as JPEG (default) or PNG bytes. */
export async function renderShapeImage(
  colour: ShapeColour,
  shape: ShapeName,
  index: number,
  size = 256,
  format: ShapeImageFormat = "jpeg",
): Promise<Buffer> {
  const image = sharp(Buffer.from(shapeImageSvg(colour, shape, index, size)));
  return format === "png"
    ? image.png({ compressionLevel: 9 }).toBuffer()
    : image.jpeg({ quality: 92, chromaSubsampling: "4:4:4" }).toBuffer();
}

/** The SVG source of an image; `renderShapeImage` rasterises it. */
export function shapeImageSvg(
  colour: ShapeColour,
  shape: ShapeName,
  index: number,
  size: number,
): string {
  const random = new SeededRandom(
    mixSeed(SHAPE_COLOURS.indexOf(colour), SHAPE_NAMES.indexOf(shape), index),
  );
  const shade = SHAPE_PALETTE[colour].map((channel) =>
    clampChannel(channel + random.int(-SHADE_JITTER, SHADE_JITTER)),
  ) as unknown as Rgb;
  const background = random.pick(colour === "white" ? DARK_BACKGROUNDS : LIGHT_BACKGROUNDS);
  const extent = size * (MIN_EXTENT + random.next() * (MAX_EXTENT - MIN_EXTENT));
  const margin = size * MARGIN;
  const centreX = margin + extent / 2 + random.next() * (size - 2 * margin - extent);
  const centreY = margin + extent / 2 + random.next() * (size - 2 * margin - extent);
  const body = shapeElement(shape, centreX, centreY, extent, rgbHex(shade));
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">` +
    `<rect width="${size}" height="${size}" fill="${rgbHex(background)}"/>${body}</svg>`
  );
}

/** Reads `red-circle-0042.jpg` (or a path or URL ending in it) back into what it shows. */
export function parseShapeImageName(pathOrUrl: string): ShapeImageRequest | undefined {
  const match = /([a-z]+)-([a-z]+)-(\d+)\.(?:jpe?g|png)$/.exec(pathOrUrl);
  if (!match) return undefined;
  const [, colour, shape, index] = match;
  if (!isShapeColour(colour) || !isShapeName(shape)) return undefined;
  return { colour, shape, index: Number(index) };
}

export function isShapeColour(value: string | undefined): value is ShapeColour {
  return (SHAPE_COLOURS as readonly (string | undefined)[]).includes(value);
}

export function isShapeName(value: string | undefined): value is ShapeName {
  return (SHAPE_NAMES as readonly (string | undefined)[]).includes(value);
}

/** Every shape spans `extent` both ways around its centre, so bounding boxes compare fairly. */
function shapeElement(
  shape: ShapeName,
  centreX: number,
  centreY: number,
  extent: number,
  fill: string,
): string {
  const half = extent / 2;
  switch (shape) {
    case "circle":
      return `<circle cx="${fixed(centreX)}" cy="${fixed(centreY)}" r="${fixed(half)}" fill="${fill}"/>`;
    case "square":
      return `<rect x="${fixed(centreX - half)}" y="${fixed(centreY - half)}" width="${fixed(extent)}" height="${fixed(extent)}" fill="${fill}"/>`;
    case "triangle":
      return polygon(
        [
          [centreX, centreY - half],
          [centreX + half, centreY + half],
          [centreX - half, centreY + half],
        ],
        fill,
      );
    case "star":
      return polygon(starPoints(centreX, centreY, extent), fill);
  }
}

/** A regular five-pointed star, point up, scaled so that its bounding box is `extent` wide. */
function starPoints(centreX: number, centreY: number, extent: number): [number, number][] {
  const outerRadius = extent / (2 * Math.sin((72 * Math.PI) / 180));
  // The star's box is shorter than it is wide; centre the box, not the star's centre point.
  const boxHeight = outerRadius * (1 + Math.cos((36 * Math.PI) / 180));
  const starCentreY = centreY - boxHeight / 2 + outerRadius;
  const points: [number, number][] = [];
  for (let vertex = 0; vertex < 10; vertex++) {
    const radius = vertex % 2 === 0 ? outerRadius : outerRadius * STAR_INNER_RATIO;
    const angle = -Math.PI / 2 + (vertex * Math.PI) / 5;
    points.push([centreX + radius * Math.cos(angle), starCentreY + radius * Math.sin(angle)]);
  }
  return points;
}

function polygon(points: [number, number][], fill: string): string {
  const list = points.map(([x, y]) => `${fixed(x)},${fixed(y)}`).join(" ");
  return `<polygon points="${list}" fill="${fill}"/>`;
}

function fixed(value: number): string {
  return value.toFixed(2);
}

function clampChannel(value: number): number {
  return Math.min(255, Math.max(0, value));
}

function rgbHex(rgb: Rgb): string {
  return `#${rgb.map((channel) => channel.toString(16).padStart(2, "0")).join("")}`;
}
