// Prompt-and-answer training examples (question + schema -> SQL pairs): the chat-templated prompt, then the answer
// and the end-of-turn token, the loss on the answer's tokens only.

import LatheTensor

public struct AnswerExample: Sendable, Equatable {
  /// The prompt's tokens, then the answer's.
  public var tokens: [Int]
  /// Where the answer starts: position t predicts tokens[t + 1], and the loss counts the targets from here on.
  public var answerStart: Int

  public init(tokens: [Int], answerStart: Int) { self.tokens = tokens; self.answerStart = answerStart }

  /// The user message through the tokenizer's chat template (with the assistant's turn opened), then the answer and
  /// the template's end of turn.
  ///
  ///     let e = AnswerExample(tokenizer: t, message: "Tables: ...\nQuestion: ...", answer: "SELECT name FROM head")
  public init(tokenizer: BPETokenizer, message: String, answer: String) {
    let prompt = tokenizer.encode(tokenizer.chatPrompt(messages: [(role: "user", content: message)]), parseSpecial: true, addBOS: false)
    let reply = tokenizer.encode(answer + AnswerExample.endOfTurn, parseSpecial: true, addBOS: false)
    self.init(tokens: prompt + reply, answerStart: prompt.count)
  }

  /// ChatML's end of turn, which the chat templates Lathe reads (ChatML) close a reply with.
  public static let endOfTurn = "<|im_end|>"

  /// Checks the ids against a vocabulary and that there is an answer to score.
  public func check(vocabulary: Int, context: Int, op: String) throws {
    guard answerStart >= 1, answerStart < tokens.count else {
      throw TensorError.invalidArgument(op: op, reason: "an example has \(tokens.count) tokens with its answer at \(answerStart): needs a prompt and an answer")
    }
    guard tokens.count <= context else {
      throw TensorError.invalidArgument(op: op, reason: "an example has \(tokens.count) tokens, more than the context \(context)")
    }
    if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
      throw TensorError.indexOutOfRange(op: op, index: bad, size: vocabulary, axis: 0)
    }
  }
}
