// load() on a Hugging Face checkpoint directory (config.json + safetensors): a tiny Llama written here, and the
// real MiniLM directory, which is a checkpoint but not of a Llama-family model.

import Foundation
import Testing
import LatheBuiltins
import LatheLang
import LatheModels
import LatheTensor
import LatheTestSupport

@Test func loadReadsAHuggingFaceCheckpointDirectory() throws {
  let dir = try TestPaths.temporaryDirectory("hf-load")
  defer { try? FileManager.default.removeItem(at: dir) }
  let config: [String: Any] = ["model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                               "num_key_value_heads": 1, "intermediate_size": 32, "vocab_size": 16, "tie_word_embeddings": true]
  try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
  let p = "model.layers.0."
  let shapes: [(String, [Int])] = [
    ("model.embed_tokens.weight", [16, 32]), (p + "input_layernorm.weight", [32]), (p + "self_attn.q_proj.weight", [32, 32]),
    (p + "self_attn.k_proj.weight", [16, 32]), (p + "self_attn.v_proj.weight", [16, 32]), (p + "self_attn.o_proj.weight", [32, 32]),
    (p + "post_attention_layernorm.weight", [32]), (p + "mlp.gate_proj.weight", [32, 32]), (p + "mlp.up_proj.weight", [32, 32]),
    (p + "mlp.down_proj.weight", [32, 32]), ("model.norm.weight", [32]),
  ]
  let tensors = try shapes.enumerated().map { i, entry in (entry.0, try Tensor.randn(entry.1, seed: UInt64(i + 1)).copied(as: .bf16)) }
  try Safetensors.write(tensors, to: dir.appendingPathComponent("model.safetensors").path)

  let interp = Interpreter(registry: Builtins.standard(), seed: 1)
  defer { interp.shutdown() }
  _ = try interp.run("let m = load(\(Value.quote(dir.path)))")
  func value(_ source: String) throws -> String { try interp.run(source).map { "\($0)" } ?? "none" }
  #expect(try value("type(m)") == "llm")
  let shape = try value("[m.architecture, m.layers, m.heads, m.kvHeads, m.vocab, m.params]")
  #expect(shape == "[\"llama\", 1, [2], [1], 16, 6752]", "\(shape)")
  #expect(try value("logits(m, [1, 2, 3]).shape") == "[16]")

  // The MiniLM checkpoint has config.json and model.safetensors, but model_type "bert".
  let miniLM = TestPaths.packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2").path
  guard FileManager.default.fileExists(atPath: miniLM + "/config.json") else { Issue.record("\(miniLM) is missing: run scripts/setup"); return }
  #expect { try interp.run("load(\(Value.quote(miniLM)))") } throws: { "\($0)".contains("model_type: 'bert' is not a Llama-family model") }
}
