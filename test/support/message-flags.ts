/**
 * Which `--flags` each command's messages name, read from the source: the strings of the code a
 * command's action can reach. Reachability is by top-level declaration, not by file, so a command
 * that uses one helper of a module does not inherit the messages of the module's other functions:
 * from the command's action, every identifier that names a top-level declaration of the same
 * module or an imported one is followed (`import("…")` and worker-thread entry modules too), and a
 * class brings all of its methods. Help text (option descriptions, config `.describe()`, examples)
 * is left out here: commander holds it, and the test reads it from the built program instead.
 *
 * A flag after `clipcrawl <command>` on the same line belongs to that command; one after another
 * program's name (`img2dataset --url_list`, `generate.ts --out`), or after `clipcrawl ${stage}`
 * (`clipcrawl ⟨…⟩`: a command the code picks), to none checked here.
 *
 * A stage's declaration (`src/stages/<stage>/stage.ts`) holds the calls that run it (`run`,
 * `plan`, …); only the commands that run stages through the registry enter them (see
 * `flagMentions`), so reading the registry for its names does not make a command print every
 * stage's messages.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export const SRC = fileURLToPath(new URL("../../src/", import.meta.url));
const COMMANDS_DIR = join(SRC, "cli", "commands");

export interface FlagMention {
  flag: string;
  /** `clipcrawl <command>` named before it on its line; undefined: the printing command's. */
  command: string | undefined;
  /** Where the string is, as `path:line`. */
  at: string;
}

/** Commander's calls whose strings are help text, checked from the built program instead. */
const HELP_TEXT_CALLS = new Set([
  "describe",
  "description",
  "summary",
  "option",
  "requiredOption",
  "addHelpText",
  "argument",
  "Option",
  "Argument",
]);
/** What a template's substitution reads as in its text. */
const SUBSTITUTION = "⟨…⟩";
const FLAG = /(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w])/g;
const PROGRAM =
  /\bclipcrawl ([a-z]+)(?: ([a-z]+))?|\bclipcrawl ⟨…⟩|\b(?:img2dataset|python3?|npx|npm|node|tsx|curl)\b|\S+\.ts\b/g;

interface ModuleInfo {
  file: string;
  source: ts.SourceFile;
  /** Top-level declarations by name. */
  declarations: Map<string, ts.Node[]>;
  /** Imported names: local name → the module and the name it exports ("*": all of it). */
  imports: Map<string, { file: string; name: string }>;
  /** `export … from`: exported name → the module and its name there. */
  reexports: Map<string, { file: string; name: string }>;
  starReexports: string[];
  /** Top-level statements that run on import. */
  sideEffects: ts.Node[];
}

export class SourceGraph {
  readonly #modules = new Map<string, ModuleInfo>();
  readonly #commands: ReadonlySet<string>;

  /** `commands`: the path of every command of the program (`serve`, `model`, `model fetch`). */
  constructor(commands: Iterable<string>) {
    for (const file of typescriptFiles(SRC)) this.#modules.set(file, readModule(file));
    this.#commands = new Set(commands);
  }

  /**
   * The leaf commands registered in src/cli/commands/, each with the nodes its action starts
   * from: the whole register function when the file registers one command, else the statement
   * that builds it.
   */
  commandEntries(): Map<string, { file: string; nodes: ts.Node[] }> {
    const entries = new Map<string, { file: string; nodes: ts.Node[] }>();
    for (const file of typescriptFiles(COMMANDS_DIR)) {
      const module = this.#module(file);
      const found: { path: string; call: ts.CallExpression }[] = [];
      const names = new Map<string, string>();
      visit(module.source, (node) => {
        const name = commandName(node);
        if (name === undefined) return true;
        const call = node as ts.CallExpression;
        const receiver = (call.expression as ts.PropertyAccessExpression).expression;
        const parent = ts.isIdentifier(receiver) ? names.get(receiver.text) : undefined;
        const path = parent === undefined ? name : `${parent} ${name}`;
        const declaration = ancestor(call, ts.isVariableDeclaration);
        if (declaration !== undefined && ts.isIdentifier(declaration.name)) {
          names.set(declaration.name.text, path);
        }
        found.push({ path, call });
        return true;
      });
      const leaves = found.filter(
        (item) => !found.some((other) => other.path.startsWith(`${item.path} `)),
      );
      for (const { path, call } of leaves) {
        const whole = leaves.length === 1;
        const node = whole
          ? (ancestor(call, ts.isFunctionDeclaration) ?? call)
          : (ancestor(call, ts.isExpressionStatement) ?? call);
        entries.set(path, { file, nodes: [node] });
      }
    }
    return entries;
  }

  /**
   * The flags named in the strings of everything reachable from these nodes of `file`;
   * `runsStages`: the command runs stages through the registry (its declarations' calls count).
   */
  flagMentions(file: string, nodes: readonly ts.Node[], runsStages = false): FlagMention[] {
    const mentions: FlagMention[] = [];
    const seen = new Set<string>();
    const pending: { file: string; node: ts.Node }[] = nodes.map((node) => ({ file, node }));
    const reach = (target: string, name: string) => {
      const resolved = this.#resolveExport(target, name);
      if (resolved === undefined) return;
      const key = `${resolved.file}#${resolved.name}`;
      if (seen.has(key)) return;
      seen.add(key);
      const module = this.#module(resolved.file);
      if (!seen.has(`${resolved.file}#(side effects)`)) {
        seen.add(`${resolved.file}#(side effects)`);
        for (const node of module.sideEffects) pending.push({ file: resolved.file, node });
      }
      const declared =
        resolved.name === "*"
          ? [...module.declarations.values()].flat()
          : (module.declarations.get(resolved.name) ?? []);
      for (const node of declared) pending.push({ file: resolved.file, node });
    };
    for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
      const { file: at, node } = item;
      const module = this.#module(at);
      const enter = (child: ts.Node): boolean => {
        if (!runsStages && isStageCall(child, at)) return false;
        if (isHelpTextCall(child)) {
          // Its arguments are help text; the chain it hangs on is code.
          visit((child as ts.CallExpression).expression, enter);
          return false;
        }
        const text = literalText(child);
        if (text !== undefined) {
          const line = module.source.getLineAndCharacterOfPosition(child.getStart()).line + 1;
          mentions.push(...mentionsIn(text, `${relative(SRC, at)}:${line}`, this.#commands));
        }
        if (ts.isIdentifier(child) && !isPropertyName(child)) {
          if (module.declarations.has(child.text)) reach(at, child.text);
          const imported = module.imports.get(child.text);
          if (imported !== undefined) reach(imported.file, imported.name);
        }
        if (ts.isCallExpression(child)) {
          const dynamic = dynamicImport(child, at);
          if (dynamic !== undefined) for (const name of dynamic.names) reach(dynamic.file, name);
          const worker = workerModule(child, at);
          if (worker !== undefined) reach(worker, "*");
        }
        return true;
      };
      visit(node, enter);
    }
    return mentions;
  }

  #module(file: string): ModuleInfo {
    const module = this.#modules.get(file);
    if (module === undefined) throw new Error(`not a module under src/: ${file}`);
    return module;
  }

  #resolveExport(file: string, name: string): { file: string; name: string } | undefined {
    const module = this.#modules.get(file);
    if (module === undefined) return undefined;
    if (name === "*" || module.declarations.has(name)) return { file, name };
    const reexport = module.reexports.get(name);
    if (reexport !== undefined) return this.#resolveExport(reexport.file, reexport.name);
    for (const target of module.starReexports) {
      const found = this.#resolveExport(target, name);
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

/** The flags a string names, with the command each belongs to (`commands`: every command path). */
export function mentionsIn(text: string, at: string, commands: ReadonlySet<string>): FlagMention[] {
  const mentions: FlagMention[] = [];
  for (const line of text.split("\n")) {
    for (const match of line.matchAll(FLAG)) {
      const before = line.slice(0, match.index);
      let program: string | null | undefined; // undefined: none named; null: not ours
      for (const named of before.matchAll(PROGRAM)) {
        const [, first, second] = named;
        if (first === undefined) program = null;
        else if (second !== undefined && commands.has(`${first} ${second}`)) {
          program = `${first} ${second}`;
        } else if (commands.has(first)) program = first;
      }
      if (program === null) continue;
      mentions.push({ flag: `--${match[1]}`, command: program, at });
    }
  }
  return mentions;
}

function readModule(file: string): ModuleInfo {
  const source = ts.createSourceFile(
    file,
    readFileSync(file, "utf8"),
    ts.ScriptTarget.ES2023,
    true,
  );
  const module: ModuleInfo = {
    file,
    source,
    declarations: new Map(),
    imports: new Map(),
    reexports: new Map(),
    starReexports: [],
    sideEffects: [],
  };
  const declare = (name: string, node: ts.Node) => {
    module.declarations.set(name, [...(module.declarations.get(name) ?? []), node]);
  };
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause;
      const target = resolveModule(file, statement.moduleSpecifier);
      if (clause === undefined || clause.isTypeOnly || target === undefined) continue;
      if (clause.name !== undefined)
        module.imports.set(clause.name.text, { file: target, name: "default" });
      const bindings = clause.namedBindings;
      if (bindings !== undefined && ts.isNamespaceImport(bindings)) {
        module.imports.set(bindings.name.text, { file: target, name: "*" });
      } else if (bindings !== undefined) {
        for (const element of bindings.elements) {
          if (element.isTypeOnly) continue;
          const name = (element.propertyName ?? element.name).text;
          module.imports.set(element.name.text, { file: target, name });
        }
      }
    } else if (ts.isExportDeclaration(statement)) {
      const target =
        statement.moduleSpecifier === undefined
          ? undefined
          : resolveModule(file, statement.moduleSpecifier);
      if (statement.isTypeOnly || target === undefined) continue;
      const clause = statement.exportClause;
      if (clause === undefined) module.starReexports.push(target);
      else if (ts.isNamedExports(clause)) {
        for (const element of clause.elements) {
          const name = (element.propertyName ?? element.name).text;
          module.reexports.set(element.name.text, { file: target, name });
        }
      }
    } else if (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) {
      if (statement.name !== undefined) declare(statement.name.text, statement);
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) {
        for (const name of boundNames(declaration.name)) declare(name, declaration);
      }
    } else if (ts.isEnumDeclaration(statement)) {
      declare(statement.name.text, statement);
    } else if (
      !ts.isInterfaceDeclaration(statement) &&
      !ts.isTypeAliasDeclaration(statement) &&
      !ts.isModuleDeclaration(statement)
    ) {
      module.sideEffects.push(statement);
    }
  }
  return module;
}

function boundNames(name: ts.BindingName): string[] {
  if (ts.isIdentifier(name)) return [name.text];
  return name.elements.flatMap((element) =>
    ts.isOmittedExpression(element) ? [] : boundNames(element.name),
  );
}

function resolveModule(from: string, specifier: ts.Expression): string | undefined {
  if (!ts.isStringLiteral(specifier) || !specifier.text.startsWith(".")) return undefined;
  return resolve(dirname(from), specifier.text.replace(/\.js$/, ".ts"));
}

/** `const { a, b } = await import("./x.js")`: those names of x; a bare `import()`: all of x. */
function dynamicImport(
  call: ts.CallExpression,
  from: string,
): { file: string; names: string[] } | undefined {
  if (call.expression.kind !== ts.SyntaxKind.ImportKeyword) return undefined;
  const [specifier] = call.arguments;
  const file = specifier === undefined ? undefined : resolveModule(from, specifier);
  if (file === undefined) return undefined;
  let parent: ts.Node = call.parent;
  if (ts.isAwaitExpression(parent)) parent = parent.parent;
  if (ts.isVariableDeclaration(parent) && ts.isObjectBindingPattern(parent.name)) {
    return {
      file,
      names: parent.name.elements.map(
        (element) => ((element.propertyName ?? element.name) as ts.Identifier).text,
      ),
    };
  }
  return { file, names: ["*"] };
}

/** `siblingModule(import.meta.url, "x-worker")`: the worker thread's entry module. */
function workerModule(call: ts.CallExpression, from: string): string | undefined {
  if (!ts.isIdentifier(call.expression) || call.expression.text !== "siblingModule")
    return undefined;
  const name = call.arguments[1];
  return name !== undefined && ts.isStringLiteral(name)
    ? join(dirname(from), `${name.text}.ts`)
    : undefined;
}

function commandName(node: ts.Node): string | undefined {
  if (!ts.isCallExpression(node) || !ts.isPropertyAccessExpression(node.expression))
    return undefined;
  if (node.expression.name.text !== "command") return undefined;
  const [name] = node.arguments;
  return name !== undefined && ts.isStringLiteral(name) ? name.text.split(" ")[0] : undefined;
}

function isHelpTextCall(node: ts.Node): boolean {
  if (!(ts.isCallExpression(node) || ts.isNewExpression(node))) return false;
  const callee = node.expression;
  const name = ts.isPropertyAccessExpression(callee)
    ? callee.name.text
    : ts.isIdentifier(callee)
      ? callee.text
      : "";
  return HELP_TEXT_CALLS.has(name);
}

/** The text of a string or template literal; `${…}` reads as a space. */
/** The members of a stage declaration that run it, entered only by commands that run stages. */
const STAGE_CALLS = new Set(["run", "plan", "expandInputs", "parallelism", "checkConfig"]);
const STAGE_DECLARATION = /[/\\]stages[/\\][^/\\]+[/\\]stage\.ts$/;

function isStageCall(node: ts.Node, file: string): boolean {
  return (
    STAGE_DECLARATION.test(file) &&
    (ts.isPropertyAssignment(node) || ts.isMethodDeclaration(node)) &&
    ts.isIdentifier(node.name) &&
    STAGE_CALLS.has(node.name.text)
  );
}

function literalText(node: ts.Node): string | undefined {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isTemplateExpression(node)) {
    // A substitution stays visible, so `clipcrawl ${stage} --redo` names no known command.
    return [node.head.text, ...node.templateSpans.map((span) => span.literal.text)].join(
      SUBSTITUTION,
    );
  }
  return undefined;
}

function isPropertyName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (
    (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
    (ts.isPropertyAssignment(parent) && parent.name === node) ||
    (ts.isMethodDeclaration(parent) && parent.name === node) ||
    (ts.isPropertyDeclaration(parent) && parent.name === node)
  );
}

function ancestor<T extends ts.Node>(
  node: ts.Node,
  is: (node: ts.Node) => node is T,
): T | undefined {
  for (let at: ts.Node | undefined = node.parent; at !== undefined; at = at.parent) {
    if (is(at)) return at;
  }
  return undefined;
}

/** Depth first; `enter` returning false skips the node's children. */
function visit(node: ts.Node, enter: (node: ts.Node) => boolean): void {
  if (enter(node) === false) return;
  ts.forEachChild(node, (child) => visit(child, enter));
}

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter(
      (entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"),
    )
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}
