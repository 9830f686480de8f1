// The model target: a model and its tokenizer built from GGUF bytes, as `load` builds them, with the decoders of
// every compressed matrix Lathe writes (Techniques.formats). Inputs are read as a file and as edits of two seeds:
// a tiny Llama with a byte-level tokenizer and ChatML template, and the same model with matrices packed by SeedLM
// and RTN. A model that builds must run a forward pass on two tokens and encode and decode text.

import Foundation
import LatheModels
import LatheTechniques
import LatheTensor

enum ModelFuzz {
  /// The 256 byte tokens of a byte-level vocabulary, in byte order (GPT-2's table, as the tokenizer spells them).
  static let byteCharacters: [String] = (0..<256).map { ByteLevel.encode([UInt8($0)]) }

  /// A byte-level BPE vocabulary: the 256 byte tokens, three merges and ChatML's special tokens.
  static func tokenizerMetadata() -> [(String, GGUFValue)] {
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    let merged = ["Ġt", "he", "Ġthe"]
    let tokens = specials + byteCharacters + merged
    let types = specials.map { _ in 3 } + (byteCharacters + merged).map { _ in 1 }
    let template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    return [
      ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("smollm")),
      ("tokenizer.ggml.tokens", .array(tokens.map(GGUFValue.string))),
      ("tokenizer.ggml.token_type", .array(types.map { GGUFValue.int32(Int32($0)) })),
      ("tokenizer.ggml.merges", .array(["Ġ t", "h e", "Ġt he"].map(GGUFValue.string))),
      ("tokenizer.ggml.bos_token_id", .uint32(1)), ("tokenizer.ggml.eos_token_id", .uint32(2)),
      ("tokenizer.chat_template", .string(template)),
    ]
  }

  /// One layer, d 32, two query heads on one key-value head, FFN 64, a vocabulary of 262 (rows fit Q8_0 blocks).
  static func tinyModel() throws -> LlamaModel {
    let d = 32, hd = 16, ffn = 64, vocab = 262
    let config = try LlamaConfig(vocabularySize: vocab, dimension: d, contextLength: 64, headCounts: [2], kvHeadCounts: [1],
                                 ffnWidths: [ffn], headDimension: hd)
    var seed: UInt64 = 7
    func w(_ shape: [Int]) throws -> Tensor { seed += 1; return try Tensor.randn(shape, seed: seed).binary(.multiply, scalar: 0.3) }
    let layer = LlamaLayer(attentionNorm: try Tensor.full([d], 1), query: try w([2 * hd, d]), key: try w([hd, d]), value: try w([hd, d]),
                           output: try w([d, 2 * hd]), ffnNorm: try Tensor.full([d], 1), gate: try w([ffn, d]), up: try w([ffn, d]),
                           down: try w([d, ffn]))
    let model = try LlamaModel(config: config, layers: [layer], tokenEmbedding: try w([vocab, d]), outputNorm: try Tensor.full([d], 1),
                               name: "tiny")
    model.ggufMetadata = tokenizerMetadata()
    return model
  }

  static let seeds: [[UInt8]] = {
    do {
      let model = try tinyModel()
      var plain = try model.ggufWriter(type: .q8_0)
      for (key, value) in tokenizerMetadata() { plain.set(key, value) }
      var out = [try plain.bytes()]
      if let seedlm = try Techniques.parse("seedlm(bits: 4)") as? any MatrixCompressor,
         let rtn = try Techniques.parse("rtn(bits: 4, group: 32)") as? any MatrixCompressor {
        let (a, _) = try model.compressed(with: seedlm, matrices: ["attn_q", "ffn_down"])
        let (b, _) = try a.compressed(with: rtn, matrices: ["ffn_up"])
        var packed = try b.ggufWriter(packed: true)
        for (key, value) in tokenizerMetadata() { packed.set(key, value) }
        out.append(try packed.bytes())
      }
      return out
    } catch {
      return []
    }
  }()

  static func check(_ input: [UInt8]) throws {
    try build(input)
    for seed in seeds { try build(SeedEdits.apply(input, to: seed)) }
  }

  static func build(_ bytes: [UInt8]) throws {
    let model: LlamaModel
    do { model = try LlamaModel(gguf: try GGUFFile(bytes: bytes), name: "fuzz", formats: Techniques.formats) } catch { return }
    let vocab = model.config.vocabularySize
    guard vocab > 0 else { throw FuzzFinding("a model with an empty vocabulary was built") }
    do {
      let logits = try model.forward([0, min(1, vocab - 1)], cache: try model.makeCache(capacity: 4))
      guard logits.count == vocab else { throw FuzzFinding("forward gave \(logits.count) logits for a vocabulary of \(vocab)") }
    } catch let finding as FuzzFinding { throw finding } catch {}
    // An edited vocabulary may legitimately lose bytes (two tokens with one text): here only the absence of a trap
    // is checked; the tokenizer target checks the round trip on SmolLM2's own vocabulary.
    if let tokenizer = model.tokenizer {
      let ids = tokenizer.encode("the <|im_start|>hé\n" + tokenizer.chatPrompt(messages: [("user", "hi")]))
      _ = try? tokenizer.decode(ids)
      var stream = tokenizer.streamDecoder()
      for id in ids { _ = try? stream.append(id) }
      _ = stream.finish()
    }
  }
}
