/**
 * The layering rules of docs/architecture.md, checked by `npm run layering` (part of `npm test`).
 * A new edge that breaks one fails with the rule's name and comment.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "stage-imports-orchestration",
      comment:
        "A stage is a function of its shards: it never imports the runners, the CLI or the server (src/shard/ is the kit stages are built from).",
      severity: "error",
      from: { path: "^src/stages/" },
      to: { path: "^src/(runner|cli|server)/" },
    },
    {
      name: "stage-imports-another-stage",
      comment:
        "Stage folders are independent: what two stages (or a stage and another layer) share lives in src/formats/, src/io/ or src/models/.",
      severity: "error",
      from: { path: "^src/stages/([^/]+)/" },
      to: { path: "^src/stages/", pathNot: "^src/stages/$1/" },
    },
    {
      name: "server-imports-stage",
      comment:
        "The server reads datasets through src/formats/ and src/io/, never through a stage folder.",
      severity: "error",
      from: { path: "^src/server/" },
      to: { path: "^src/stages/" },
    },
    {
      name: "governance-and-stages",
      comment:
        "Governance and the stages share formats (src/formats/), not each other's modules; the CLI or the library entry composes them.",
      severity: "error",
      from: { path: "^src/(governance|stages)/" },
      to: { path: "^src/(governance|stages)/", pathNot: "^src/$1/" },
    },
    {
      name: "io-imports-above",
      comment:
        "src/io/ is the bottom layer: storage, files and the network. It imports nothing above it.",
      severity: "error",
      from: { path: "^src/io/" },
      to: {
        path: "^src/(cli|config|demo|formats|governance|models|pipeline|runner|server|shard|stages|client)/",
      },
    },
    {
      name: "formats-imports-above",
      comment:
        "src/formats/ holds what several layers read; it imports only src/io/, src/models/ and leaf modules.",
      severity: "error",
      from: { path: "^src/formats/" },
      to: { path: "^src/(cli|demo|governance|pipeline|runner|server|shard|stages)/" },
    },
    {
      name: "shard-kit-imports-above",
      comment: "The shard kit knows nothing of processes, queues, the CLI or any stage.",
      severity: "error",
      from: { path: "^src/shard/" },
      to: { path: "^src/(cli|demo|governance|pipeline|runner|server|stages)/" },
    },
    {
      name: "pipeline-imports-orchestration",
      comment:
        "The stage registry declares the pipeline; runners and the CLI read it, not the reverse.",
      severity: "error",
      from: { path: "^src/pipeline/" },
      to: { path: "^src/(cli|runner|server)/" },
    },
    {
      name: "library-imports-cli",
      comment: "The CLI is a thin layer over the library: nothing but the CLI imports src/cli/.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/cli/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "package-imports-dev-tooling",
      comment: "What the package runs lives in src/; scripts/, test/ and bench/ are not shipped.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(scripts|test|bench)/" },
    },
    {
      name: "no-runtime-cycle",
      comment: "Modules that import each other at run time (type-only imports are allowed).",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
