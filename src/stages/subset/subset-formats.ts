/** The file formats subset writes, apart from the stage so that the CLI can list them cheaply. */
export const SUBSET_FORMATS = ["parquet", "csv", "jsonl"] as const;
export type SubsetFormat = (typeof SUBSET_FORMATS)[number];
