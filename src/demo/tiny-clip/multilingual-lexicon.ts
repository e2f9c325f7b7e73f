/**
 * The words of the tiny multilingual text model: the sample's colours, shapes and background
 * nouns in English, German, French, Spanish, Italian, Portuguese and Dutch, with the inflected
 * forms each language writes them in (gender, number and case endings), as a language model
 * knows a language rather than one sample's phrasing.
 *
 * Where the colour word stands decides which background list a noun is in: English, German and
 * Dutch put it before the noun ("white background", "weißem Hintergrund", "witte achtergrond"),
 * the Romance languages after ("fond blanc", "fondo blanco", "sfondo bianco", "fundo branco").
 */
import { ENGLISH_LEXICON, type TextTowerLexicon } from "./text-tower.js";

export const TINY_MULTILINGUAL_LANGUAGES = ["en", "de", "fr", "es", "it", "pt", "nl"] as const;
type Language = (typeof TINY_MULTILINGUAL_LANGUAGES)[number];

/** A German adjective with every strong and weak ending: rot, rote, roter, rotes, roten, rotem. */
function germanAdjective(stem: string): string[] {
  return ["", "e", "er", "es", "en", "em"].map((ending) => stem + ending);
}

/** Romance adjectives in -o: masculine, feminine, and their plurals. */
function romanceAdjective(stem: string): string[] {
  return [`${stem}o`, `${stem}a`, `${stem}os`, `${stem}as`];
}

const LEXICONS: Readonly<Record<Language, TextTowerLexicon>> = {
  en: ENGLISH_LEXICON,
  de: {
    colours: {
      red: germanAdjective("rot"),
      green: germanAdjective("grün"),
      blue: germanAdjective("blau"),
      yellow: germanAdjective("gelb"),
      purple: [...germanAdjective("violett"), "lila"],
      orange: [
        "orange",
        "oranger",
        "oranges",
        "orangen",
        "orangem",
        ...germanAdjective("orangefarben"),
      ],
      black: germanAdjective("schwarz"),
      white: germanAdjective("weiß"),
    },
    shapes: {
      circle: ["kreis", "kreise", "kreisen", "kreises"],
      square: ["quadrat", "quadrate", "quadraten", "quadrats"],
      triangle: ["dreieck", "dreiecke", "dreiecken", "dreiecks"],
      star: ["stern", "sterne", "sternen", "sterns"],
    },
    backgroundNounsAfterColour: ["hintergrund", "hintergründen", "karte", "papier"],
    backgroundNounsBeforeColour: [],
  },
  fr: {
    colours: {
      red: ["rouge", "rouges"],
      green: ["vert", "verte", "verts", "vertes"],
      blue: ["bleu", "bleue", "bleus", "bleues"],
      yellow: ["jaune", "jaunes"],
      purple: ["violet", "violette", "violets", "violettes"],
      orange: ["orange", "oranges"],
      black: ["noir", "noire", "noirs", "noires"],
      white: ["blanc", "blanche", "blancs", "blanches"],
    },
    shapes: {
      circle: ["cercle", "cercles"],
      square: ["carré", "carrés"],
      triangle: ["triangle", "triangles"],
      star: ["étoile", "étoiles"],
    },
    backgroundNounsAfterColour: [],
    backgroundNounsBeforeColour: ["fond", "carte", "papier"],
  },
  es: {
    colours: {
      red: romanceAdjective("roj"),
      green: ["verde", "verdes"],
      blue: ["azul", "azules"],
      yellow: romanceAdjective("amarill"),
      purple: [...romanceAdjective("morad"), "púrpura"],
      orange: ["naranja", "naranjas"],
      black: romanceAdjective("negr"),
      white: romanceAdjective("blanc"),
    },
    shapes: {
      circle: ["círculo", "círculos"],
      square: ["cuadrado", "cuadrados"],
      triangle: ["triángulo", "triángulos"],
      star: ["estrella", "estrellas"],
    },
    backgroundNounsAfterColour: [],
    backgroundNounsBeforeColour: ["fondo", "tarjeta", "papel", "cartulina"],
  },
  it: {
    colours: {
      red: ["rosso", "rossa", "rossi", "rosse"],
      green: ["verde", "verdi"],
      blue: ["blu", "azzurro", "azzurra", "azzurri", "azzurre"],
      yellow: ["giallo", "gialla", "gialli", "gialle"],
      purple: ["viola"],
      orange: ["arancione", "arancioni"],
      black: ["nero", "nera", "neri", "nere"],
      white: ["bianco", "bianca", "bianchi", "bianche"],
    },
    shapes: {
      circle: ["cerchio", "cerchi"],
      square: ["quadrato", "quadrati"],
      triangle: ["triangolo", "triangoli"],
      star: ["stella", "stelle"],
    },
    backgroundNounsAfterColour: [],
    backgroundNounsBeforeColour: ["sfondo", "fondo", "carta", "cartoncino", "foglio"],
  },
  pt: {
    colours: {
      red: romanceAdjective("vermelh"),
      green: ["verde", "verdes"],
      blue: ["azul", "azuis"],
      yellow: romanceAdjective("amarel"),
      purple: romanceAdjective("rox"),
      orange: ["laranja", "laranjas"],
      black: romanceAdjective("pret"),
      white: romanceAdjective("branc"),
    },
    shapes: {
      circle: ["círculo", "círculos"],
      square: ["quadrado", "quadrados"],
      triangle: ["triângulo", "triângulos"],
      star: ["estrela", "estrelas"],
    },
    backgroundNounsAfterColour: [],
    backgroundNounsBeforeColour: ["fundo", "cartão", "papel"],
  },
  nl: {
    colours: {
      red: ["rood", "rode"],
      green: ["groen", "groene"],
      blue: ["blauw", "blauwe"],
      yellow: ["geel", "gele"],
      purple: ["paars", "paarse"],
      orange: ["oranje"],
      black: ["zwart", "zwarte"],
      white: ["wit", "witte"],
    },
    shapes: {
      circle: ["cirkel", "cirkels"],
      square: ["vierkant", "vierkanten"],
      triangle: ["driehoek", "driehoeken"],
      star: ["ster", "sterren"],
    },
    backgroundNounsAfterColour: ["achtergrond", "kaart", "papier"],
    backgroundNounsBeforeColour: [],
  },
};

/** Every language's words in one lexicon; a word several languages share is listed once. */
export function multilingualLexicon(): TextTowerLexicon {
  const languages = TINY_MULTILINGUAL_LANGUAGES.map((language) => LEXICONS[language]);
  const union = (pick: (lexicon: TextTowerLexicon) => readonly string[]) => [
    ...new Set(languages.flatMap(pick)),
  ];
  const english = ENGLISH_LEXICON;
  return {
    colours: mapKeys(english.colours, (colour) => union((lexicon) => lexicon.colours[colour])),
    shapes: mapKeys(english.shapes, (shape) => union((lexicon) => lexicon.shapes[shape])),
    backgroundNounsAfterColour: union((lexicon) => lexicon.backgroundNounsAfterColour),
    backgroundNounsBeforeColour: union((lexicon) => lexicon.backgroundNounsBeforeColour),
  };
}

function mapKeys<Key extends string>(
  record: Readonly<Record<Key, unknown>>,
  value: (key: Key) => string[],
): Record<Key, string[]> {
  const keys = Object.keys(record) as Key[];
  return Object.fromEntries(keys.map((key) => [key, value(key)])) as Record<Key, string[]>;
}
