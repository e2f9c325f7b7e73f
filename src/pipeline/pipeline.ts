/**
 * The pipeline, declared once: its stages in order. Runners (local and distributed), the demo,
 * `status`, the run report and `stats` all iterate this list; none of them names a stage's
 * place in the order or the meaning of its counts. Each stage declares itself in its own folder
 * (`src/stages/<stage>/stage.ts`, see src/shard/stage-definition.ts for what a declaration holds).
 *
 * Adding a stage: a folder with its stage function and its declaration, and one line here.
 */
import type { AnyStageDefinition, StageLink } from "../shard/stage-definition.js";
import { downloadStage } from "../stages/download/stage.js";
import { embedStage } from "../stages/embed/stage.js";
import { extractStage } from "../stages/extract/stage.js";
import { filterStage } from "../stages/filter/stage.js";
import { indexStage } from "../stages/index/stage.js";

export const PIPELINE = [extractStage, downloadStage, embedStage, filterStage, indexStage] as const;

export type StageName = (typeof PIPELINE)[number]["name"];

/** Each pipeline stage's summary type, by stage name. */
export type StageSummaries = {
  [Stage in (typeof PIPELINE)[number] as Stage["name"]]: Awaited<ReturnType<Stage["run"]>>;
};

/** A value for each stage of the pipeline (and, for a pipeline with extra stages, theirs). */
export type PerStage<T> = Record<StageName, T> & Partial<Record<string, T>>;

/** The stages a runner runs: the pipeline's, or a list that adds to it (tests, extensions). */
export type Stages = readonly AnyStageDefinition[];

export const STAGE_NAMES: readonly StageName[] = PIPELINE.map((stage) => stage.name);

/**
 * The stages cut into chains of stages linked shard by shard: each chain starts with a stage
 * that plans its own shards (the first one, from the run's inputs) and goes on through the
 * `each shard` stages after it. A chain starts once the chain before it is over.
 */
export interface StageChain {
  /** How the chain's first stage follows the chain before it (ignored for the first chain). */
  link: StageLink;
  stages: AnyStageDefinition[];
}

export function stageChains(stages: Stages): StageChain[] {
  const chains: StageChain[] = [];
  for (const stage of stages) {
    const last = chains.at(-1);
    if (last !== undefined && stage.link === "each shard") last.stages.push(stage);
    else chains.push({ link: stage.link, stages: [stage] });
  }
  return chains;
}

/** The stage that makes `stage`'s shards one by one, if any (the one before it in its chain). */
export function nextStage(stages: Stages, stage: string): AnyStageDefinition | undefined {
  const at = stages.findIndex((item) => item.name === stage);
  const next = stages[at + 1];
  return at >= 0 && next?.link === "each shard" ? next : undefined;
}

export function stageNamed(stages: Stages, name: string): AnyStageDefinition {
  const stage = stages.find((item) => item.name === name);
  if (stage === undefined) {
    throw new Error(`no stage "${name}" (stages: ${stages.map((item) => item.name).join(", ")})`);
  }
  return stage;
}

/** An object with one value per stage, in pipeline order. */
export function perStage<T>(stages: Stages, value: (stage: AnyStageDefinition) => T): PerStage<T> {
  return Object.fromEntries(stages.map((stage) => [stage.name, value(stage)])) as PerStage<T>;
}
