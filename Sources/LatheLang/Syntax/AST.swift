// The parse tree. It is compiled once to closures (Compiler.swift); nothing walks it at run time.

public indirect enum Expr {
  case integer(Int, SourceLocation)
  case float(Double, SourceLocation)
  case string(String, SourceLocation)
  case interpolated([InterpolatedPiece], SourceLocation)
  case bool(Bool, SourceLocation)
  case none(SourceLocation)
  case name(String, SourceLocation)
  case list([Expr], SourceLocation)
  case record([(String, Expr)], SourceLocation)
  case unary(UnaryOperator, Expr, SourceLocation)
  case binary(BinaryOperator, Expr, Expr, SourceLocation)
  case logical(isAnd: Bool, Expr, Expr, SourceLocation)
  case ternary(Expr, Expr, Expr, SourceLocation)
  case range(Expr, Expr, closed: Bool, SourceLocation)
  case call(Expr, [Argument], SourceLocation)
  case member(Expr, String, SourceLocation)
  case index(Expr, [IndexItem], SourceLocation)
  case function(FunctionDecl)

  public var location: SourceLocation {
    switch self {
    case .integer(_, let l), .float(_, let l), .string(_, let l), .interpolated(_, let l), .bool(_, let l), .none(let l),
         .name(_, let l), .list(_, let l), .record(_, let l), .unary(_, _, let l), .binary(_, _, _, let l),
         .logical(_, _, _, let l), .ternary(_, _, _, let l), .range(_, _, _, let l), .call(_, _, let l),
         .member(_, _, let l), .index(_, _, let l):
      return l
    case .function(let f): return f.location
    }
  }
}

public enum InterpolatedPiece {
  case text(String)
  case expr(Expr)
}

public struct Argument {
  public var label: String?
  public var value: Expr
  public var location: SourceLocation
}

/// One component of `x[...]`: an index, a slice `a:b:c`, `...` or `None`-style new axis (`none`).
public enum IndexItem {
  case single(Expr)
  case slice(Expr?, Expr?, Expr?, SourceLocation)
  case ellipsis(SourceLocation)
}

public enum UnaryOperator: String { case negate = "-", plus = "+", not = "!" }

public enum BinaryOperator: String {
  case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
  case matmul = "@"
  case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
  case contains = "in"
}

public struct Parameter {
  public var name: String
  public var defaultValue: Expr?
  public var location: SourceLocation
}

public final class FunctionDecl {
  public var name: String?
  public var parameters: [Parameter]
  public var body: [Stmt]
  public var location: SourceLocation
  /// True for `x => expr` lambdas: the body is one expression statement whose value is returned.
  public var isExpressionBody: Bool
  public init(name: String?, parameters: [Parameter], body: [Stmt], location: SourceLocation, isExpressionBody: Bool) {
    self.name = name; self.parameters = parameters; self.body = body; self.location = location
    self.isExpressionBody = isExpressionBody
  }
}

public indirect enum Stmt {
  case expression(Expr)
  case declare(name: String, mutable: Bool, value: Expr, SourceLocation)
  case assign(target: Expr, op: BinaryOperator?, value: Expr, SourceLocation)
  case function(FunctionDecl)
  case ifElse(condition: Expr, then: [Stmt], otherwise: [Stmt]?, SourceLocation)
  case whileLoop(condition: Expr, body: [Stmt], SourceLocation)
  case forIn(name: String, sequence: Expr, body: [Stmt], SourceLocation)
  case returnValue(Expr?, SourceLocation)
  case breakLoop(SourceLocation)
  case continueLoop(SourceLocation)
  case importFile(String, SourceLocation)
  case block([Stmt], SourceLocation)

  public var location: SourceLocation {
    switch self {
    case .expression(let e): return e.location
    case .declare(_, _, _, let l), .assign(_, _, _, let l), .ifElse(_, _, _, let l), .whileLoop(_, _, let l),
         .forIn(_, _, _, let l), .returnValue(_, let l), .breakLoop(let l), .continueLoop(let l), .importFile(_, let l),
         .block(_, let l):
      return l
    case .function(let f): return f.location
    }
  }
}
