// One decoder layer's weights: the seven matrices (tensors or a technique's packed form), the norm vectors and the
// feed-forward's activation.

import LatheTensor

/// One transformer block's weights: matrices [out, in] (tensors in any dtype the matvec and dequantize paths read,
/// or a technique's packed form) and the norm vectors.
public struct LlamaLayer {
  public var attentionNorm: Tensor, ffnNorm: Tensor
  public var query: LinearWeight, key: LinearWeight, value: LinearWeight, output: LinearWeight
  public var gate: LinearWeight, up: LinearWeight, down: LinearWeight
  /// [headDimension] each, when the configuration has queryKeyNorm.
  public var queryNorm: Tensor?, keyNorm: Tensor?
  /// The feed-forward's gate activation: act(gate)·up (SiLU as trained; ReLU for a relufied model).
  public var activation: FFNActivation = .silu
  public init(attentionNorm: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor,
              ffnNorm: Tensor, gate: Tensor, up: Tensor, down: Tensor, queryNorm: Tensor? = nil, keyNorm: Tensor? = nil) {
    self.attentionNorm = attentionNorm; self.query = .tensor(query); self.key = .tensor(key); self.value = .tensor(value)
    self.output = .tensor(output); self.ffnNorm = ffnNorm; self.gate = .tensor(gate); self.up = .tensor(up); self.down = .tensor(down)
    self.queryNorm = queryNorm; self.keyNorm = keyNorm
  }

  /// The names of the seven matrices, llama.cpp's (`attn_q` … `ffn_down`), in a fixed order.
  public static let matrixNames = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

  public var matrices: [(String, LinearWeight)] {
    zip(LlamaLayer.matrixNames, [query, key, value, output, gate, up, down]).map { ($0, $1) }
  }

  /// Replaces the matrix named `name` (one of `matrixNames`).
  public mutating func setMatrix(_ name: String, _ weight: LinearWeight) {
    switch name {
    case "attn_q": query = weight
    case "attn_k": key = weight
    case "attn_v": value = weight
    case "attn_output": output = weight
    case "ffn_gate": gate = weight
    case "ffn_up": up = weight
    default: down = weight
    }
  }
}

/// The activation of a decoder layer's gated feed-forward, act(x·W_gateᵀ) ⊙ (x·W_upᵀ).
public enum FFNActivation: String, Sendable, CaseIterable {
  /// x·σ(x): SwiGLU, as Llama models are trained.
  case silu
  /// max(x, 0): exact zeros, for relufied models (ReLU strikes back).
  case relu
  /// x·Φ(x) (tanh approximation): GeGLU.
  case gelu
}
