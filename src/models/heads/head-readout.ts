/**
 * A head's raw output [rows, columns] → one score a row: pick the column (or softmax the row and
 * then pick it), apply the activation, multiply by the scale. A raw value that is NaN or infinite
 * is the head's failure on that row, reported as it came out ("punsafe head returned NaN"), not
 * hidden by a sigmoid that would turn Infinity into 1.
 */
import type { HeadActivation } from "./score-config.js";
import type { HeadScores } from "./score-head.js";

export interface Readout {
  column: number;
  activation: HeadActivation;
  scale: number;
}

/** Raw head outputs, row-major. */
export interface OutputMatrix {
  rows: number;
  columns: number;
  data: ArrayLike<number>;
}

export function readScores(name: string, output: OutputMatrix, readout: Readout): HeadScores {
  const { rows, columns, data } = output;
  if (readout.column >= columns) {
    throw new RangeError(`${name} head: column ${readout.column} of ${columns}`);
  }
  const values: (number | null)[] = [];
  const errors: (string | null)[] = [];
  for (let row = 0; row < rows; row++) {
    const start = row * columns;
    const used =
      readout.activation === "softmax"
        ? Array.from({ length: columns }, (_, column) => data[start + column] as number)
        : [data[start + readout.column] as number];
    const broken = used.find((value) => !Number.isFinite(value));
    if (broken !== undefined) {
      values.push(null);
      errors.push(`${name} head returned ${broken}`);
      continue;
    }
    const score = activate(used, readout) * readout.scale;
    if (!Number.isFinite(score)) {
      values.push(null);
      errors.push(`${name} head gave ${score} after its activation and scale`);
      continue;
    }
    values.push(score);
    errors.push(null);
  }
  return { values, errors };
}

function activate(used: readonly number[], readout: Readout): number {
  switch (readout.activation) {
    case "none":
      return used[0] as number;
    case "sigmoid":
      return sigmoid(used[0] as number);
    case "softmax":
      return softmax(used)[readout.column] as number;
  }
}

export function sigmoid(value: number): number {
  return 1 / (1 + Math.exp(-value));
}

/** Softmax with the maximum subtracted first, so large logits do not overflow. */
export function softmax(logits: readonly number[]): number[] {
  const largest = Math.max(...logits);
  const exponentials = logits.map((logit) => Math.exp(logit - largest));
  const total = exponentials.reduce((sum, value) => sum + value, 0);
  return exponentials.map((value) => value / total);
}
