// The tokenizer target: SmolLM2's own vocabulary (read from models/ when it is there, else the model target's tiny
// byte-level vocabulary) on arbitrary text. The first byte picks what the rest is:
//   0: text encoded without special tokens; decoding gives the text back, byte for byte (less the bytes the
//      vocabulary has no token for, which llama.cpp drops too), and so does the streaming decoder, one id at a time;
//      the pre-tokenizer's words join to the text;
//   1: text encoded with special tokens parsed; decoding gives it back (less those bytes);
//   2: a chat template's source; a template that reads must render a conversation that encodes.

import Foundation
import LatheModels

enum TokenizerFuzz {
  nonisolated(unsafe) static var tokenizer: BPETokenizer?

  static let modelPath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

  /// Bytes the vocabulary has no token for (SmolLM2 has none for 0x06, for one): encoding drops them, as llama.cpp
  /// does (a symbol with no token and no byte token is left out), so the round trip is checked without them.
  nonisolated(unsafe) static var droppedBytes = Set<UInt8>()

  static func prepare() {
    if tokenizer != nil { return }
    if let file = try? GGUFFile(path: modelPath), let t = try? BPETokenizer(gguf: file) {
      tokenizer = t
    } else if let seed = ModelFuzz.seeds.first, let file = try? GGUFFile(bytes: seed) {
      tokenizer = try? BPETokenizer(gguf: file)
    }
    guard let tokenizer else { return }
    droppedBytes = Set((0..<256).filter { tokenizer.id(of: ModelFuzz.byteCharacters[$0]) == nil }.map { UInt8($0) })
  }

  /// The text encoding can keep: without the bytes the vocabulary cannot spell.
  static func spellable(_ text: String) -> String {
    droppedBytes.isEmpty ? text : String(decoding: text.utf8.filter { !droppedBytes.contains($0) }, as: UTF8.self)
  }

  static let seeds: [(String, [UInt8])] = [
    ("text", [0] + Array("Hello, world! 12345 tokens\n\tcafé 東京 😀 a\u{301}".utf8)),
    ("special", [1] + Array("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n".utf8)),
    ("template", [2] + Array("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".utf8)),
  ]

  static func check(_ input: [UInt8]) throws {
    prepare()
    guard let tokenizer, let mode = input.first else { return }
    let text = String(decoding: input.dropFirst(), as: UTF8.self), expected = spellable(text)
    switch mode % 3 {
    case 0:
      let ids = tokenizer.encode(text, parseSpecial: false, addBOS: false)
      let decoded = try tokenizer.decode(ids)
      guard decoded == expected else { throw FuzzFinding("decode(encode(text)) differs: \(difference(expected, decoded))") }
      var stream = tokenizer.streamDecoder(), streamed = ""
      for id in ids { streamed += try stream.append(id) }
      streamed += stream.finish()
      guard streamed == expected else { throw FuzzFinding("the streaming decoder differs: \(difference(expected, streamed))") }
      let words = tokenizer.preTokenizer.words(in: text)
      guard words.joined() == text else { throw FuzzFinding("the pre-tokenizer's words do not join to \(text.debugDescription)") }
    case 1:
      let ids = tokenizer.encode(text, parseSpecial: true, addBOS: false)
      let decoded = try tokenizer.decode(ids)
      guard decoded == expected else {
        throw FuzzFinding("with special tokens, decode(encode(text)) differs: \(difference(expected, decoded)); ids \(ids.prefix(40))")
      }
    default:
      guard let template = try? ChatTemplate(text) else { return }
      let prompt = template.render(messages: [("system", "Be brief."), ("user", text)])
      _ = tokenizer.encode(prompt)
    }
  }

  /// Where two texts part: the byte offset and a few bytes of each from there.
  static func difference(_ a: String, _ b: String) -> String {
    let x = Array(a.utf8), y = Array(b.utf8)
    let i = zip(x, y).prefix { $0 == $1 }.count
    return "at byte \(i) of \(x.count)/\(y.count): expected \(x[i...].prefix(16).map { $0 }), got \(y[i...].prefix(16).map { $0 })"
  }
}
