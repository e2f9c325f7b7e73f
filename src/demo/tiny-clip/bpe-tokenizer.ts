/**
 * A CLIP-style byte-level BPE tokenizer, trained on a small corpus and written as the standard
 * `tokenizer.json` (Hugging Face `tokenizers` format) that CLIP checkpoints ship.
 *
 * It follows OpenAI CLIP's SimpleTokenizer, and its `tokenizer.json` mirrors the one Hugging Face
 * converts it to: NFC + whitespace collapsing + lower-casing; CLIP's word regex; every byte mapped
 * to a printable character (GPT-2's bytes_to_unicode); a `</w>` suffix on the last symbol of each
 * word; vocabulary = the 256 byte characters, the same with `</w>`, one entry per merge, then
 * `<|startoftext|>` and `<|endoftext|>`. Only the merges differ: they are learnt here, the classic
 * way (repeatedly merge the most frequent adjacent pair), on the sample's own captions.
 *
 * The special tokens can be another model family's: the tiny multilingual text model uses
 * XLM-R's (`<s>`, `</s>`, `<pad>`, `<unk>`), as M-CLIP's tokenizer does, so that a pad token that
 * is not the end token is exercised too.
 */

export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";
export const END_OF_WORD = "</w>";
/** CLIP's word pattern (Hugging Face's conversion of it, without the special tokens). */
export const CLIP_WORD_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`;

export interface SpecialTokens {
  start: string;
  end: string;
  pad: string;
  unknown: string;
}

/** CLIP's: the end token also pads and stands for unknown text. */
export const CLIP_SPECIAL_TOKENS: SpecialTokens = {
  start: START_OF_TEXT,
  end: END_OF_TEXT,
  pad: END_OF_TEXT,
  unknown: END_OF_TEXT,
};

/** XLM-RoBERTa's, which multilingual CLIP text towers (M-CLIP) inherit. */
export const XLM_R_SPECIAL_TOKENS: SpecialTokens = {
  start: "<s>",
  end: "</s>",
  pad: "<pad>",
  unknown: "<unk>",
};

/** Each special token once, in the order the vocabulary lists them. */
function distinctSpecialTokens(specials: SpecialTokens): string[] {
  return [...new Set([specials.start, specials.end, specials.pad, specials.unknown])];
}

export interface TrainedBpe {
  /** Merge rules, highest priority first. */
  merges: [string, string][];
  /** Token → id, specials included (they come last). */
  vocab: Map<string, number>;
}

/** GPT-2's bytes_to_unicode: byte → printable character, in CLIP's vocabulary order. */
export function byteAlphabet(): { byte: number; symbol: string }[] {
  const printable: number[] = [];
  for (let byte = 33; byte <= 126; byte++) printable.push(byte);
  for (let byte = 161; byte <= 172; byte++) printable.push(byte);
  for (let byte = 174; byte <= 255; byte++) printable.push(byte);
  const alphabet = printable.map((byte) => ({ byte, symbol: String.fromCodePoint(byte) }));
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) {
    if (printable.includes(byte)) continue;
    alphabet.push({ byte, symbol: String.fromCodePoint(256 + shifted) });
    shifted++;
  }
  return alphabet;
}

/** A word as the vocabulary spells it: each UTF-8 byte as its printable character. */
export function byteLevel(word: string): string {
  const symbolOf = new Map(byteAlphabet().map(({ byte, symbol }) => [byte, symbol]));
  return [...new TextEncoder().encode(word)].map((byte) => symbolOf.get(byte) as string).join("");
}

/** CLIP's text normalisation and word split: what the tokenizer sees before BPE. */
export function clipWords(text: string): string[] {
  const normalised = text.normalize("NFC").replace(/\s+/gu, " ").toLowerCase();
  return normalised.match(new RegExp(CLIP_WORD_PATTERN, "gu")) ?? [];
}

/**
 * Learns merges until no adjacent pair occurs `minPairFrequency` times. `requiredWords` are
 * counted as frequent enough to end up as single tokens (the words the model gives meaning to).
 * The special tokens end the vocabulary.
 */
export function trainBpe(
  corpus: readonly string[],
  requiredWords: readonly string[],
  specials: SpecialTokens = CLIP_SPECIAL_TOKENS,
  minPairFrequency = 2,
): TrainedBpe {
  const symbolOf = new Map(byteAlphabet().map(({ byte, symbol }) => [byte, symbol]));
  const wordCounts = new Map<string, number>();
  const addWord = (word: string, count: number) =>
    wordCounts.set(word, (wordCounts.get(word) ?? 0) + count);
  for (const text of corpus) for (const word of clipWords(text)) addWord(word, 1);
  for (const word of requiredWords) addWord(word, minPairFrequency);

  const words = [...wordCounts].map(([word, count]) => {
    const symbols = [...new TextEncoder().encode(word)].map((byte) => symbolOf.get(byte) as string);
    symbols[symbols.length - 1] += END_OF_WORD;
    return { symbols, count };
  });

  const merges: [string, string][] = [];
  for (;;) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let index = 0; index + 1 < symbols.length; index++) {
        const pair = `${symbols[index]} ${symbols[index + 1]}`;
        pairCounts.set(pair, (pairCounts.get(pair) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = minPairFrequency - 1;
    for (const [pair, count] of pairCounts) {
      // Ties go to the smaller pair, so that training is deterministic.
      if (count > bestCount || (count === bestCount && best !== undefined && pair < best)) {
        best = pair;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [left, right] = best.split(" ") as [string, string];
    merges.push([left, right]);
    for (const word of words) word.symbols = mergePair(word.symbols, left, right);
  }

  const vocab = new Map<string, number>();
  const alphabet = byteAlphabet().map(({ symbol }) => symbol);
  for (const symbol of alphabet) vocab.set(symbol, vocab.size);
  for (const symbol of alphabet) vocab.set(symbol + END_OF_WORD, vocab.size);
  for (const [left, right] of merges) {
    // Two merges can spell the same token ("ab c", "a bc"); it is one vocabulary entry.
    if (!vocab.has(left + right)) vocab.set(left + right, vocab.size);
  }
  for (const token of distinctSpecialTokens(specials)) vocab.set(token, vocab.size);
  return { merges, vocab };
}

function mergePair(symbols: string[], left: string, right: string): string[] {
  const merged: string[] = [];
  for (let index = 0; index < symbols.length; index++) {
    if (symbols[index] === left && symbols[index + 1] === right) {
      merged.push(left + right);
      index++;
    } else {
      merged.push(symbols[index] as string);
    }
  }
  return merged;
}

/** The `tokenizer.json` document, in the layout of Hugging Face's CLIP tokenizers. */
export function tokenizerJson(bpe: TrainedBpe, specials = CLIP_SPECIAL_TOKENS): object {
  const idOf = (token: string) => bpe.vocab.get(token) as number;
  const specialToken = (content: string) => ({
    id: idOf(content),
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: distinctSpecialTokens(specials).map(specialToken),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "NFC" },
        { type: "Replace", pattern: { Regex: String.raw`\s+` }, content: " " },
        { type: "Lowercase" },
      ],
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: { Regex: CLIP_WORD_PATTERN },
          behavior: "Removed",
          invert: true,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "RobertaProcessing",
      sep: [specials.end, idOf(specials.end)],
      cls: [specials.start, idOf(specials.start)],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: specials.unknown,
      continuing_subword_prefix: "",
      end_of_word_suffix: END_OF_WORD,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges.map(([left, right]) => `${left} ${right}`),
    },
  };
}

/** The `tokenizer_config.json` of a tokenizer with the given context length. */
export function tokenizerConfigJson(
  contextLength: number,
  specials = CLIP_SPECIAL_TOKENS,
  tokenizerClass = "CLIPTokenizer",
): object {
  return {
    tokenizer_class: tokenizerClass,
    bos_token: specials.start,
    eos_token: specials.end,
    unk_token: specials.unknown,
    pad_token: specials.pad,
    model_max_length: contextLength,
    do_lower_case: true,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
    errors: "replace",
  };
}
