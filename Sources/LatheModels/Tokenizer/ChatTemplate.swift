// Chat prompts in ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), the form of SmolLM2's `tokenizer.chat_template`.

/// A ChatML chat template, read from the Jinja source a GGUF carries in `tokenizer.chat_template`. Only that shape is
/// understood, not Jinja in general: the source must build each message as `'<|im_start|>' + role + '\n' + content
/// + '<|im_end|>' + '\n'`. A string literal of the form `'<|im_start|>system\n…<|im_end|>\n'` in it is the default
/// system message, put first when the first message is not a system message.
///
///     try ChatTemplate(source).render(messages: [("user", "Hi")])
///     // "<|im_start|>system\n…<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
public struct ChatTemplate: Sendable, Equatable {
  /// Inserted before the first message when that is not a system message.
  public var defaultSystemMessage: String?

  /// Plain ChatML with no default system message.
  public static let chatML = ChatTemplate(defaultSystemMessage: nil)

  public init(defaultSystemMessage: String?) { self.defaultSystemMessage = defaultSystemMessage }

  /// Reads a Jinja ChatML template; any other template throws `TokenizerError.invalid` naming
  /// `tokenizer.chat_template`.
  public init(_ source: String) throws {
    let literals = Self.stringLiterals(in: source)
    let joined = literals.joined()
    let roleUsed = source.contains("message['role']") || source.contains("message[\"role\"]") || source.contains("message.role")
    let contentUsed = source.contains("message['content']") || source.contains("message[\"content\"]")
      || source.contains("message.content")
    guard joined.contains(Self.start), joined.contains(Self.end), roleUsed, contentUsed else {
      throw TokenizerError.invalid(field: "tokenizer.chat_template",
                                   reason: "not a ChatML template ('<|im_start|>' + role + '\\n' + content + '<|im_end|>')")
    }
    let systemHeader = Self.start + "system\n", systemFooter = Self.end + "\n"
    defaultSystemMessage = literals.first { $0.hasPrefix(systemHeader) && $0.hasSuffix(systemFooter) }
      .map { String($0.dropFirst(systemHeader.count).dropLast(systemFooter.count)) }
  }

  static let start = "<|im_start|>", end = "<|im_end|>"

  /// The prompt text for `messages`, ending with the assistant's header when `addGenerationPrompt`.
  public func render(messages: [(role: String, content: String)], addGenerationPrompt: Bool = true) -> String {
    var out = ""
    for (i, message) in messages.enumerated() {
      if i == 0, message.role != "system", let system = defaultSystemMessage {
        out += Self.start + "system\n" + system + Self.end + "\n"
      }
      out += Self.start + message.role + "\n" + message.content + Self.end + "\n"
    }
    if addGenerationPrompt { out += Self.start + "assistant\n" }
    return out
  }

  /// The values of the quoted string literals inside `{{ }}` and `{% %}` blocks of Jinja source, with `\n`, `\t`,
  /// `\r`, `\\`, `\'` and `\"` unescaped.
  static func stringLiterals(in source: String) -> [String] {
    let scalars = Array(source.unicodeScalars)
    var literals: [String] = []
    var inBlock = false, i = 0
    while i < scalars.count {
      let c = scalars[i], following = i + 1 < scalars.count ? scalars[i + 1] : " "
      if !inBlock {
        if c == "{" && (following == "{" || following == "%") { inBlock = true; i += 1 }
      } else if (c == "}" || c == "%") && following == "}" {
        inBlock = false; i += 1
      } else if c == "'" || c == "\"" {
        var value = String.UnicodeScalarView()
        i += 1
        while i < scalars.count && scalars[i] != c {
          if scalars[i] == "\\" && i + 1 < scalars.count {
            i += 1
            switch scalars[i] {
            case "n": value.append("\n")
            case "t": value.append("\t")
            case "r": value.append("\r")
            default: value.append(scalars[i])
            }
          } else {
            value.append(scalars[i])
          }
          i += 1
        }
        literals.append(String(value))
      }
      i += 1
    }
    return literals
  }
}
