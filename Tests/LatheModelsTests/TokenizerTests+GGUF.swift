// Tokenizers read from GGUF metadata: a small written file with malformed keys, then the SmolLM2-135M-Instruct
// tokenizer: llama.cpp's ids on the reference prompts, vocabulary strings, round trips, streaming, the chat template
// and speed.

import Foundation
import Testing
@testable import LatheModels

extension SmolLM2 {
  static let tokenizer: BPETokenizer? = file.flatMap { try? BPETokenizer(gguf: $0) }

  /// The tokenizer of the SmolLM2 GGUF, read once; a missing file is a recorded failure, as in `open()`.
  static func openTokenizer() throws -> BPETokenizer {
    let file = try open()
    return try tokenizer ?? BPETokenizer(gguf: file)        // the second read gives the reason it failed
  }
}

/// A GGUF holding only tokenizer metadata: the byte alphabet, `<|im_start|>` (control, BOS) and the merge `a b`.
func tokenizerGGUF(_ edit: (inout GGUFWriter) -> Void = { _ in }) throws -> GGUFFile {
  var w = GGUFWriter()
  w.set("tokenizer.ggml.model", .string("gpt2"))
  w.set("tokenizer.ggml.pre", .string("smollm"))
  w.set("tokenizer.ggml.tokens", .array((ByteLevel.scalars.map { String($0) } + ["<|im_start|>", "ab"]).map(GGUFValue.string)))
  w.set("tokenizer.ggml.token_type", .array(Array(repeating: .int32(1), count: 256) + [.int32(3), .int32(1)]))
  w.set("tokenizer.ggml.merges", .array([.string("a b")]))
  w.set("tokenizer.ggml.bos_token_id", .uint32(256))
  w.set("tokenizer.ggml.add_bos_token", .bool(true))
  edit(&w)
  return try GGUFFile(bytes: w.bytes())
}

@Test func tokenizerReadsGGUFKeys() throws {
  let tokenizer = try BPETokenizer(gguf: tokenizerGGUF())
  #expect(tokenizer.encode("ab<|im_start|>1") == [256, 257, 256, 0x31])
  #expect(tokenizer.addBOS && tokenizer.eos == nil && tokenizer.chatTemplate == nil)
  // Optional keys may be absent; a template other than ChatML is left out rather than refused.
  let plain = try BPETokenizer(gguf: tokenizerGGUF {
    for key in ["tokenizer.ggml.pre", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.add_bos_token"] { $0.removeValue(forKey: key) }
    $0.set("tokenizer.chat_template", .string("{% for m in messages %}[INST] {{ m.content }}{% endfor %}"))
  })
  #expect(plain.preTokenizer == .default && !plain.addBOS && plain.bos == nil && plain.chatTemplate == nil)
  #expect(!plain.encode("<|im_start|>").contains(256))     // no token types: all are normal, none special
}

@Test func malformedGGUFTokenizerKeysNameTheKey() throws {
  let cases: [(String, (inout GGUFWriter) -> Void)] = [
    ("tokenizer.ggml.model", { $0.set("tokenizer.ggml.model", .string("llama")) }),
    ("tokenizer.ggml.model", { $0.removeValue(forKey: "tokenizer.ggml.model") }),
    ("tokenizer.ggml.tokens", { $0.removeValue(forKey: "tokenizer.ggml.tokens") }),
    ("tokenizer.ggml.tokens", { $0.set("tokenizer.ggml.tokens", .array([.int32(1)])) }),
    ("tokenizer.ggml.merges", { $0.removeValue(forKey: "tokenizer.ggml.merges") }),
    ("tokenizer.ggml.merges", { $0.set("tokenizer.ggml.merges", .string("a b")) }),
    ("tokenizer.ggml.merges[0]", { $0.set("tokenizer.ggml.merges", .array([.string("a c")])) }),
    ("tokenizer.ggml.token_type", { $0.set("tokenizer.ggml.token_type", .array([.string("normal")])) }),
    ("tokenizer.ggml.token_type", { $0.set("tokenizer.ggml.token_type", .array([.int32(1)])) }),
    ("tokenizer.ggml.pre", { $0.set("tokenizer.ggml.pre", .uint32(3)) }),
    ("tokenizer.ggml.pre", { $0.set("tokenizer.ggml.pre", .string("qwen2")) }),
    ("tokenizer.ggml.bos_token_id", { $0.set("tokenizer.ggml.bos_token_id", .string("1")) }),
    ("tokenizer.ggml.eos_token_id", { $0.set("tokenizer.ggml.eos_token_id", .uint32(9999)) }),
    ("tokenizer.ggml.add_bos_token", { $0.set("tokenizer.ggml.add_bos_token", .uint8(1)) }),
  ]
  for (key, edit) in cases {
    do {
      _ = try BPETokenizer(gguf: tokenizerGGUF(edit))
      Issue.record("accepted malformed tokenizer metadata (expected an error about \(key))")
    } catch let error as TokenizerError {
      #expect("\(error)".hasPrefix("\(key):"), "\(error)")
    }
  }
}

@Test func smolLM2VocabularyIsRead() throws {
  let tokenizer = try SmolLM2.openTokenizer()
  #expect(tokenizer.vocabularySize == 49152)
  #expect(tokenizer.preTokenizer == .smollm)
  #expect(tokenizer.bos == 1 && tokenizer.eos == 2 && tokenizer.unknown == 0 && !tokenizer.addBOS)
  #expect(try tokenizer.tokenText(1) == "<|im_start|>" && tokenizer.tokenTypes[1] == .control)
  #expect(tokenizer.tokenTypes.filter { $0 == .control }.count == 17)
  #expect(tokenizer.specials.count == 17 && tokenizer.merges.count == 48900)
  #expect(tokenizer.id(of: "Ġthe") == 260)
}

@Test(arguments: TokenizerReference.prompts.map(\.name))
func smolLM2MatchesLlamaCpp(name: String) throws {
  let tokenizer = try SmolLM2.openTokenizer()
  let reference = try #require(TokenizerReference.prompts.first { $0.name == name })
  let ids = tokenizer.encode(reference.text)
  #expect(ids == reference.ids)
  #expect(try reference.ids.map { try tokenizer.tokenText($0) } == reference.pieces)
  if let plain = reference.idsParseSpecialFalse {
    #expect(tokenizer.encode(reference.text, parseSpecial: false) == plain)
  }
  #expect(tokenizer.encode(reference.text, addBOS: true) == [1] + reference.ids)
  #expect(Array(try tokenizer.decode(ids).utf8) == Array(reference.text.utf8))
  var decoder = tokenizer.streamDecoder()
  var streamed = ""
  for id in ids { streamed += try decoder.append(id) }
  streamed += decoder.finish()
  #expect(Array(streamed.utf8) == Array(reference.text.utf8))
}

@Test(arguments: [
  "👨‍👩‍👧 🇫🇷🏳️‍🌈 👍🏽👍🏿", "東京都の天気は晴れ。中文，한국어!", "e\u{301}\u{323} n\u{303} A\u{30A} Ω\u{308}",
  "\t\t\tindent\n\n\n\n  \t \nend   ", "0 00 1.5e-10 -42 3,141,592 ١٢٣ ²³ Ⅻ ½", "it's they'll I'M we'VE 'd",
  "<|im_start|>user\n<|im_end|> <|endoftext|><|im_start", "\u{A0}\u{3000}\u{2003}\u{85}\u{200B}\u{FEFF}\r\n",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∑∞≠√ «quotes» “curly” — – …", "\u{0}\u{1}\u{1F}\u{7F}",
])
func smolLM2RoundTrips(text: String) throws {
  let tokenizer = try SmolLM2.openTokenizer()
  for parseSpecial in [true, false] {
    let ids = tokenizer.encode(text, parseSpecial: parseSpecial)
    #expect(Array(try tokenizer.decode(ids).utf8) == Array(text.utf8))
    var decoder = tokenizer.streamDecoder()
    var pieces: [String] = []
    for id in ids { pieces.append(try decoder.append(id)) }
    pieces.append(decoder.finish())
    #expect(Array(pieces.joined().utf8) == Array(text.utf8))
    #expect(!pieces.joined().contains("\u{FFFD}"))
  }
}

@Test func smolLM2StreamsAnEmojiSplitAcrossTokens() throws {
  let tokenizer = try SmolLM2.openTokenizer()
  let ids = tokenizer.encode(" 🚀")
  #expect(ids == [15107, 244, 218])                  // "ĠðŁ", "ļ", "Ģ" (from the unicode reference prompt)
  var decoder = tokenizer.streamDecoder()
  #expect(try ids.map { try decoder.append($0) } == [" ", "", "🚀"])
  #expect(decoder.finish() == "")
  // Cut short, the unfinished emoji becomes U+FFFD at the end.
  #expect(try decoder.append(ids[0]) == " " && decoder.append(ids[1]) == "" && decoder.finish() == "\u{FFFD}")
  #expect(try tokenizer.decode([2, 198]) == "<|im_end|>\n")
}

@Test func smolLM2ChatTemplateMatchesJinja() throws {
  let tokenizer = try SmolLM2.openTokenizer()
  let reference = try #require(TokenizerReference.prompts.first { $0.name == "chat" })
  let prompt = tokenizer.chatPrompt(messages: [(role: "user", content: "What is the capital of France? Answer in one word.")])
  #expect(prompt == reference.text)
  #expect(tokenizer.encode(prompt) == reference.ids)
  #expect(tokenizer.chatTemplate?.defaultSystemMessage == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
}

/// 300 KB of mixed text (the five prompts repeated); the debug build takes about 0.2 s, release about 0.01 s.
@Test func smolLM2EncodesQuickly() throws {
  let tokenizer = try SmolLM2.openTokenizer()
  let text = String(repeating: TokenizerReference.prompts.map(\.text).joined(), count: 420)
  #expect(text.utf8.count > 300_000)
  let start = DispatchTime.now().uptimeNanoseconds
  let ids = tokenizer.encode(text)
  let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  #expect(ids.count == 420 * TokenizerReference.prompts.map(\.ids.count).reduce(0, +))
  #expect(seconds < 3, "encoding \(text.utf8.count) bytes took \(seconds) s")
}
