/**
 * Writes the tiny multilingual text model: a text-only folder (config.json, tokenizer.json,
 * tokenizer_config.json, onnx/text_model.onnx) whose captions land in the tiny CLIP model's
 * 48-dimensional space, as LAION's multilingual CLIP text tower (M-CLIP) maps captions into
 * ViT-B/32's. A German "roter Kreis auf weißem Hintergrund" embeds where the tiny CLIP text
 * tower puts "a red circle on a white background", and so near a red circle's image embedding.
 *
 *   npx tsx src/demo/tiny-clip/generate-multilingual.ts --out DIR
 *
 * Like M-CLIP's, the tokenizer uses XLM-R's special tokens (`<s>`, `</s>`, `<pad>`, `<unk>`) and
 * the tower takes an `attention_mask`. The tokenizer is trained on the sample's text in the seven
 * languages the model knows (the other languages' captions still tokenise, byte by byte, as
 * byte-level BPE always can: training on all twenty would take seconds, not a fraction of one);
 * only the words of multilingual-lexicon.ts carry meaning. The output is deterministic: the same
 * bytes on every run.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  CAPTIONS_BY_LANGUAGE,
  NAVIGATION_LABELS,
  SHAPE_ALT_LANGUAGES,
  shapeAltPhrasings,
} from "../sample/sample-captions.js";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../sample/wat-generator.js";
import {
  tokenizerConfigJson,
  tokenizerJson,
  trainBpe,
  XLM_R_SPECIAL_TOKENS,
} from "./bpe-tokenizer.js";
import { PROJECTION_DIM } from "./concept-space.js";
import { json, type ModelFile, type TinyClipSummary, writeModelFolder } from "./generate.js";
import { multilingualLexicon, TINY_MULTILINGUAL_LANGUAGES } from "./multilingual-lexicon.js";
import { buildTextTower, meaningfulWords } from "./text-tower.js";

/** Longer than CLIP's 77, as a multilingual encoder's context is (M-CLIP's is 512). */
export const TINY_MULTILINGUAL_CONTEXT_LENGTH = 128;

export async function generateTinyMultilingualTextModel(outDir: string): Promise<TinyClipSummary> {
  const folder = resolve(outDir);
  const lexicon = multilingualLexicon();
  const specials = XLM_R_SPECIAL_TOKENS;
  const bpe = trainBpe(tokenizerCorpus(), meaningfulWords(lexicon), specials);
  const idOf = (token: string) => bpe.vocab.get(token) as number;
  const files: ModelFile[] = [
    [
      "config.json",
      json({
        _name_or_path: "clipcrawl/tiny-multilingual-clip",
        architectures: ["MultilingualCLIP"],
        model_type: "M-CLIP",
        modelBase: "clipcrawl/tiny-bag-of-words",
        numDims: PROJECTION_DIM,
        languages: TINY_MULTILINGUAL_LANGUAGES,
        vocab_size: bpe.vocab.size,
        max_position_embeddings: TINY_MULTILINGUAL_CONTEXT_LENGTH,
        bos_token_id: idOf(specials.start),
        eos_token_id: idOf(specials.end),
        pad_token_id: idOf(specials.pad),
        torch_dtype: "float32",
      }),
    ],
    ["tokenizer.json", json(tokenizerJson(bpe, specials))],
    [
      "tokenizer_config.json",
      json(
        tokenizerConfigJson(TINY_MULTILINGUAL_CONTEXT_LENGTH, specials, "PreTrainedTokenizerFast"),
      ),
    ],
    [
      "onnx/text_model.onnx",
      buildTextTower(bpe.vocab, lexicon, {
        graphName: "tiny_multilingual_clip_text",
        docString:
          "tiny multilingual CLIP text tower: colour and shape words in seven languages, outer product, projection",
        attentionMask: true,
      }),
    ],
  ];
  return {
    folder,
    files: await writeModelFolder(folder, files),
    vocabularySize: bpe.vocab.size,
    embeddingSize: PROJECTION_DIM,
  };
}

/** The sample's text in the model's languages: captions, navigation labels and shape alts. */
function tokenizerCorpus(): string[] {
  const shapeAlts = SHAPE_ALT_LANGUAGES.flatMap((language) =>
    SHAPE_COLOURS.flatMap((colour) =>
      SHAPE_NAMES.flatMap((shape) => shapeAltPhrasings(language, colour, shape)),
    ),
  );
  return [
    ...TINY_MULTILINGUAL_LANGUAGES.flatMap((language) => [
      ...CAPTIONS_BY_LANGUAGE[language],
      ...NAVIGATION_LABELS[language],
    ]),
    ...shapeAlts,
  ];
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { out: { type: "string" } } });
  if (values.out === undefined) {
    process.stderr.write("usage: generate-multilingual.ts --out DIR\n");
    process.exitCode = 2;
    return;
  }
  const summary = await generateTinyMultilingualTextModel(values.out);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
