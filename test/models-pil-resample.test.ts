import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededRandom } from "../src/demo/sample/wat-generator.js";
import {
  PIL_RESAMPLE,
  type PixelRegion,
  pilResize,
  type RgbImage,
} from "../src/models/pil-resample.js";

function noise(width: number, height: number, seed: number): RgbImage {
  const random = new SeededRandom(seed);
  const data = new Uint8Array(width * height * 3);
  for (let index = 0; index < data.length; index++) data[index] = random.int(0, 255);
  return { data, width, height };
}

/** The region cut from a full image, zeros where it reaches outside: what a centre crop does. */
function cut(image: RgbImage, region: PixelRegion): RgbImage {
  const data = new Uint8Array(region.width * region.height * 3);
  for (let row = 0; row < region.height; row++) {
    for (let column = 0; column < region.width; column++) {
      const y = row + region.top;
      const x = column + region.left;
      if (y < 0 || y >= image.height || x < 0 || x >= image.width) continue;
      for (let channel = 0; channel < 3; channel++) {
        data[(row * region.width + column) * 3 + channel] = image.data[
          (y * image.width + x) * 3 + channel
        ] as number;
      }
    }
  }
  return { data, width: region.width, height: region.height };
}

const sizes: [string, number, number][] = [
  ["shrink both axes", 224, 168],
  ["enlarge both axes", 300, 260],
  ["resize columns only", 150, 97],
  ["resize rows only", 131, 70],
  ["same size", 131, 97],
];

test("a region of a resize has exactly the pixels of the full resize, zeros outside it", () => {
  const image = noise(131, 97, 5);
  for (const [code, name] of Object.entries(PIL_RESAMPLE).map(([name, code]) => [code, name])) {
    for (const [label, width, height] of sizes) {
      const full = pilResize(image, width, height, code as number);
      assert.equal(full.width, width);
      assert.equal(full.height, height);
      const regions: PixelRegion[] = [
        { top: 3, left: 5, height: Math.min(40, height - 3), width: Math.min(50, width - 5) },
        { top: -4, left: -6, height: height + 9, width: width + 11 },
        { top: height - 10, left: width - 7, height: 20, width: 20 },
        { top: height + 5, left: 0, height: 4, width: 4 },
      ];
      for (const region of regions) {
        const part = pilResize(image, width, height, code as number, region);
        assert.deepEqual(part, cut(full, region), `${name}, ${label}, ${JSON.stringify(region)}`);
      }
    }
  }
});
