// Byte-level BPE on small hand-made vocabularies: pre-tokenizer words, merge order, special tokens, decoding,
// the chat template, and malformed inputs refused by field.

import Foundation
import Testing
@testable import LatheModels

/// The 256 byte-level scalars (id = byte value), then `extra` texts, with `merges` and the types given by index.
func byteVocabulary(extra: [String] = [], merges: [String] = [], types: [Int: Int] = [:], pre: String = "gpt2",
                    bos: Int? = nil, addBOS: Bool = false) throws -> BPETokenizer {
  let tokens = ByteLevel.scalars.map { String($0) } + extra
  var tokenTypes = Array(repeating: 1, count: tokens.count)
  for (id, type) in types { tokenTypes[id] = type }
  return try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: tokenTypes, preTokenizer: pre,
                          bos: bos, eos: nil, unknown: nil, addBOS: addBOS)
}

@Test func byteAlphabetIsGPT2s() {
  #expect(ByteLevel.scalars[0x20] == "Ġ" && ByteLevel.scalars[0x0A] == "Ċ" && ByteLevel.scalars[0x09] == "ĉ")
  #expect(ByteLevel.scalars[0x41] == "A" && ByteLevel.scalars[0xAD] == "Ń" && ByteLevel.scalars[0xE9] == "é")
  #expect(Set(ByteLevel.scalars).count == 256)
  let all = (0...255).map(UInt8.init)
  #expect(ByteLevel.decode(ByteLevel.encode(all)) == all)
}

@Test(arguments: [
  (PreTokenizer.gpt2, "I'm here  now\n\nok", ["I", "'m", " here", " ", " now", "\n", "\n", "ok"]),
  (.gpt2, "they'll've 'S", ["they", "'ll", "'ve", " '", "S"]),
  (.gpt2, "x 2024 ½", ["x", " 2024", " ½"]),
  (.gpt2, "hi  ", ["hi", "  "]),
  (.gpt2, "\n    if n < 2:", ["\n   ", " if", " n", " <", " 2", ":"]),
  (.gpt2, "e\u{301}x", ["e", "\u{301}", "x"]),
  (.gpt2, "你好，世界! 🚀🔥", ["你好", "，", "世界", "!", " 🚀🔥"]),
  (.gpt2, "a\u{3000}\u{3000}b\tc", ["a", "\u{3000}", "\u{3000}", "b", "\t", "c"]),
  (.smollm, "on 2024-03 ½x", ["on", " ", "2", "0", "2", "4", "-", "0", "3", " ", "½", "x"]),
  (.smollm, "$19.99", ["$", "1", "9", ".", "9", "9"]),
  (.default, "a+b=12345 (x)", ["a", "+", "b", "=", "123", "45", " ", "(", "x", ")"]),
  (.default, "x 1234", ["x", " ", "123", "4"]),
])
func preTokenizerWords(pre: PreTokenizer, text: String, words: [String]) {
  #expect(pre.words(in: text) == words)
}

@Test func preTokenizerNames() throws {
  #expect(try PreTokenizer(name: "smollm") == .smollm)
  #expect(try PreTokenizer(name: "gpt2") == .gpt2)
  #expect(try PreTokenizer(name: "") == .default)
  #expect(throws: TokenizerError.self) { try PreTokenizer(name: "llama-bpe") }
}

@Test func mergesApplyByRankThenLeftmost() throws {
  let abFirst = try byteVocabulary(extra: ["ab", "bc"], merges: ["a b", "b c"])
  let bcFirst = try byteVocabulary(extra: ["ab", "bc"], merges: ["b c", "a b"])
  let ab = 256, bc = 257, a = 0x61, c = 0x63
  #expect(abFirst.encode("abc") == [ab, c])
  #expect(bcFirst.encode("abc") == [a, bc])
  let pairs = try byteVocabulary(extra: ["aa"], merges: ["a a"])
  #expect(pairs.encode("aaa") == [256, a])
  #expect(pairs.encode("aaaa") == [256, 256])
}

@Test func wordsMergeWithinPreTokenizerWordsOnly() throws {
  // "Ġw" and "orld" merge, but never across the space that starts the next word.
  let tokenizer = try byteVocabulary(extra: ["he", "ll", "hell", "hello", "Ġw", "or", "orl", "orld", "Ġworld", "oĠ"],
                                     merges: ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "or l", "orl d",
                                              "Ġw orld", "o Ġ"])
  let hello = 259, world = 264
  #expect(tokenizer.encode("hello world") == [hello, world])
  #expect(tokenizer.encode("hello world hello world") == [hello, world, 0x20, hello, world])
  #expect(try tokenizer.decode(tokenizer.encode("hello world")) == "hello world")
  // The cache gives the same ids the second time.
  let once = tokenizer.encode("hello hello hello"), twice = tokenizer.encode("hello hello hello")
  #expect(once == twice)
  #expect(try tokenizer.decode(once) == "hello hello hello")
}

@Test func specialTokensAreCutOutLongestFirst() throws {
  let tokenizer = try byteVocabulary(extra: ["<|s|>", "<|s|><|t|>", "<u>"], types: [256: 3, 257: 3, 258: 4])
  let s = 256, st = 257, u = 258
  #expect(tokenizer.encode("<|s|>x<|s|>") == [s, 0x78, s])
  #expect(tokenizer.encode("<|s|><|t|><|s|>") == [st, s])
  let plain = tokenizer.encode("<|s|>x", parseSpecial: false)
  #expect(!plain.contains(s) && plain.allSatisfy { $0 < 256 })
  #expect(try tokenizer.decode(plain) == "<|s|>x")
  // User-defined tokens are cut out even when special text is not parsed, as in llama.cpp.
  #expect(tokenizer.encode("a<u>", parseSpecial: false) == [0x61, u])
  #expect(try tokenizer.decode([s, 0x78, st]) == "<|s|>x<|s|><|t|>")
}

@Test func beginningOfSequence() throws {
  let withBOS = try byteVocabulary(extra: ["<s>"], types: [256: 3], bos: 256, addBOS: true)
  #expect(withBOS.encode("a") == [256, 0x61])
  #expect(withBOS.encode("a", addBOS: false) == [0x61])
  let without = try byteVocabulary(extra: ["<s>"], types: [256: 3], bos: 256, addBOS: false)
  #expect(without.encode("a") == [0x61] && without.encode("a", addBOS: true) == [256, 0x61])
  #expect(without.encode("") == [] && withBOS.encode("") == [256])
}

@Test func decodeRefusesUnknownIds() throws {
  let tokenizer = try byteVocabulary()
  #expect(throws: TokenizerError.unknownID(256, vocabularySize: 256)) { try tokenizer.decode([0x61, 256]) }
  #expect(throws: TokenizerError.self) { try tokenizer.decode([-1]) }
  #expect(throws: TokenizerError.self) { try tokenizer.tokenText(999) }
  var decoder = tokenizer.streamDecoder()
  #expect(throws: TokenizerError.self) { try decoder.append(256) }
  #expect(try tokenizer.tokenText(0x20) == "Ġ" && tokenizer.id(of: "Ġ") == 0x20 && tokenizer.id(of: "nope") == nil)
}

@Test(arguments: ["naïve café", "你好，世界", "🚀🔥👍🏽", "e\u{301}\u{302}", "\t\t x\n\n\n  y  ", "3.14159 2024-03-15",
                  "", " ", "\u{0}\u{7F}\u{85}\u{A0}\u{AD}"])
func byteVocabularyRoundTrips(text: String) throws {
  for pre in ["gpt2", "smollm", "default"] {
    let tokenizer = try byteVocabulary(pre: pre)
    let ids = tokenizer.encode(text)
    #expect(Array(try tokenizer.decode(ids).utf8) == Array(text.utf8))
    var decoder = tokenizer.streamDecoder()
    var streamed = ""
    for id in ids { streamed += try decoder.append(id) }
    streamed += decoder.finish()
    #expect(Array(streamed.utf8) == Array(text.utf8))
  }
}

@Test func streamDecoderHoldsSplitCharacters() throws {
  let tokenizer = try byteVocabulary()
  var decoder = tokenizer.streamDecoder()
  let rocket = Array("🚀".utf8).map(Int.init)        // F0 9F 9A 80: four byte tokens
  #expect(try rocket.dropLast().map { try decoder.append($0) } == ["", "", ""])
  #expect(try decoder.append(rocket[3]) == "🚀")
  #expect(try decoder.append(0x61) == "a")
  // An unfinished character at the end becomes U+FFFD on finish.
  _ = try decoder.append(0xE4)
  _ = try decoder.append(0xBD)
  #expect(decoder.finish() == "\u{FFFD}")
  #expect(decoder.finish() == "")
  // Bytes that can never start or continue a character come out at once.
  #expect(try decoder.append(0xFF) == "\u{FFFD}")
  #expect(try decoder.append(0x80) == "\u{FFFD}")
  #expect(try decoder.append(0xE0) == "" && decoder.append(0x41) == "\u{FFFD}A")
  // Joined pieces equal decode, also for broken sequences.
  let ids = [0xF0, 0x9F, 0x61, 0xC3, 0xA9, 0xED, 0xA0, 0x80, 0xE4]
  var joined = ""
  for id in ids { joined += try decoder.append(id) }
  joined += decoder.finish()
  #expect(joined == (try tokenizer.decode(ids)))
}

/// SmolLM2's `tokenizer.chat_template`, as its GGUF carries it.
let smolLM2ChatTemplate = """
  {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou \
  are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + \
  message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}\
  {{ '<|im_start|>assistant\\n' }}{% endif %}
  """

@Test func chatTemplateRendersChatML() throws {
  let template = try ChatTemplate(smolLM2ChatTemplate)
  #expect(template.defaultSystemMessage == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
  #expect(template.render(messages: [("user", "Hi")]) == """
    <|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
    """)
  #expect(template.render(messages: [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")],
                          addGenerationPrompt: false)
          == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n")
  #expect(template.render(messages: []) == "<|im_start|>assistant\n")
  #expect(ChatTemplate.chatML.render(messages: [("user", "Hi")], addGenerationPrompt: false) == "<|im_start|>user\nHi<|im_end|>\n")
  #expect(throws: TokenizerError.self) { try ChatTemplate("{{ bos_token }}{% for m in messages %}[INST] {{ m.content }}{% endfor %}") }
  let tokenizer = try BPETokenizer(tokens: ["a"], merges: [], tokenTypes: [], preTokenizer: "gpt2", bos: nil, eos: nil,
                                   unknown: nil, addBOS: false, chatTemplate: smolLM2ChatTemplate)
  #expect(tokenizer.chatPrompt(messages: [("user", "Hi")]) == template.render(messages: [("user", "Hi")]))
}

@Test func malformedVocabulariesNameTheField() throws {
  let bytes = ByteLevel.scalars.map { String($0) }
  func make(tokens: [String] = bytes + ["ab"], merges: [String] = ["a b"], types: [Int] = [], pre: String = "gpt2",
            bos: Int? = nil, eos: Int? = nil, unknown: Int? = nil) throws {
    _ = try BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types, preTokenizer: pre, bos: bos, eos: eos,
                         unknown: unknown, addBOS: false)
  }
  try make()
  let cases: [(String, () throws -> Void)] = [
    ("tokenizer.ggml.tokens", { try make(tokens: []) }),
    ("tokenizer.ggml.merges[0]", { try make(merges: ["ab"]) }),
    ("tokenizer.ggml.merges[1]", { try make(merges: ["a b", "a "]) }),
    ("tokenizer.ggml.merges[0]", { try make(merges: ["a zz"]) }),
    ("tokenizer.ggml.merges[0]", { try make(merges: ["b a"]) }),          // "ba" is not a token
    ("tokenizer.ggml.merges[0]", { try make(merges: [""]) }),
    ("tokenizer.ggml.token_type", { try make(types: [1, 1]) }),
    ("tokenizer.ggml.token_type[3]", { try make(types: [1, 1, 1, 9] + Array(repeating: 1, count: 253)) }),
    ("tokenizer.ggml.pre", { try make(pre: "unheard-of") }),
    ("tokenizer.ggml.bos_token_id", { try make(bos: 257) }),
    ("tokenizer.ggml.eos_token_id", { try make(eos: -1) }),
    ("tokenizer.ggml.unknown_token_id", { try make(unknown: 1000) }),
    ("tokenizer.chat_template", { _ = try ChatTemplate("{{ messages }}") }),
  ]
  for (field, build) in cases {
    do {
      try build()
      Issue.record("accepted a malformed vocabulary (expected an error about \(field))")
    } catch let error as TokenizerError {
      #expect("\(error)".hasPrefix("\(field):"), "\(error)")
    }
  }
}
