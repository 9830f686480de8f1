// lathe-bench: language-model figures beside llama.cpp's llama-bench (when on the PATH), interpreter figures beside
// python3 running the same programs, then tensor-engine figures beside their references (raw cblas_sgemm, memcpy),
// in one run. The filter "llm", "interpreter", "runahead", "train" or a case name's part ("prefill", "matmul", "fib") picks
// sections.
//
//   swift run -c release lathe-bench [filter] [--repeat N]

import Foundation
import LatheLang

struct Case {
  let name: String
  let lathe: String
  let python: String
  /// The printed result both must agree on.
  let expected: String
}

let cases: [Case] = [
  Case(name: "fib(25)",
       lathe: """
       fn fib(n) {
         if n < 2 { return n }
         return fib(n - 1) + fib(n - 2)
       }
       fib(25)
       """,
       python: """
       def fib(n):
           if n < 2:
               return n
           return fib(n - 1) + fib(n - 2)
       result = fib(25)
       """,
       expected: "75025"),
  Case(name: "loop 1e7 (while, +=)",
       lathe: """
       fn loop(n) {
         var i = 0
         var s = 0
         while i < n {
           s += i
           i += 1
         }
         return s
       }
       loop(10000000)
       """,
       python: """
       def loop(n):
           i = 0
           s = 0
           while i < n:
               s += i
               i += 1
           return s
       result = loop(10000000)
       """,
       expected: "49999995000000"),
  Case(name: "for-in range 1e7",
       lathe: """
       fn total(n) {
         var s = 0
         for i in 0..<n { s += i }
         return s
       }
       total(10000000)
       """,
       python: """
       def total(n):
           s = 0
           for i in range(n):
               s += i
           return s
       result = total(10000000)
       """,
       expected: "49999995000000"),
  Case(name: "closures + lists 1e5",
       lathe: """
       fn work(n) {
         var xs = []
         for i in 0..<n { xs.append(i * 2) }
         let ys = map(xs, x => x + 1)
         return sum(ys)
       }
       work(100000)
       """,
       python: """
       def work(n):
           xs = []
           for i in range(n):
               xs.append(i * 2)
           ys = list(map(lambda x: x + 1, xs))
           return sum(ys)
       result = work(100000)
       """,
       expected: "10000000000"),
]

var repeatOption: Int? = nil
var filter: String? = nil
var args = Array(CommandLine.arguments.dropFirst())
// A child process of the language-model section: loads the model alone so that its peak memory is the load's own.
if args.count == 2, args[0] == ModelBench.loadProbeFlag { exit(ModelBench.loadProbe(path: args[1])) }
// A child process of the training section: one case at the thread count its LATHE_THREADS sets.
if args.count == 2, args[0] == TrainBench.probeFlag { exit(TrainBench.probe(args[1])) }
while let a = args.first {
  args.removeFirst()
  if a == "--repeat", let n = args.first.flatMap(Int.init) { repeatOption = max(1, n); args.removeFirst() } else { filter = a }
}
let repeatCount = repeatOption ?? 5

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Best wall time of running `source` in one interpreter (compiling included, as a cell would).
func timeLathe(_ c: Case) throws -> (Double, String) {
  let interp = Interpreter()
  if let stdlib = Prelude.stdlibDirectory() { try interp.loadPrelude(from: stdlib) }
  var best = Double.infinity, result = ""
  for _ in 0..<repeatCount {
    let t = now()
    let v = try interp.run(c.lathe, name: c.name)
    best = min(best, now() - t)
    result = v?.description ?? "none"
  }
  return (best, result)
}

/// Best wall time python3 reports for the same program (timed inside python, so start-up is excluded).
func timePython(_ c: Case) -> (Double, String)? {
  let script = """
  import time
  best = float('inf')
  for _ in range(\(repeatCount)):
      t = time.perf_counter()
  \(c.python.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
      best = min(best, time.perf_counter() - t)
  print(best)
  print(result)
  """
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
  p.arguments = ["python3", "-c", script]
  let pipe = Pipe()
  p.standardOutput = pipe
  p.standardError = FileHandle.nullDevice
  do { try p.run() } catch { return nil }
  let data = pipe.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  guard p.terminationStatus == 0 else { return nil }
  let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
  guard lines.count >= 2, let t = Double(lines[0]) else { return nil }
  return (t, lines[1])
}

func ms(_ s: Double) -> String { String(format: "%9.2f ms", s * 1000) }

var failed = false
// First, so that nothing else has run in the process yet; a model run takes tens of seconds, hence fewer repeats.
do { try ModelBench.run(repeatCount: repeatOption ?? 3, filter: filter) } catch { print("llm: error: \(error)"); failed = true }
let selected = cases.filter { c in filter.map { c.name.contains($0) || $0 == "interpreter" } ?? true }
if !selected.isEmpty {
  print("\nlathe-bench: interpreter, best of \(repeatCount) (wall time; python3 timed in-process)")
  print("case".padding(toLength: 26, withPad: " ", startingAt: 0) + "      lathe" + "     python3" + "   python3/lathe")
}
for c in selected {
  do {
    let (t, result) = try timeLathe(c)
    if result != c.expected { print("  \(c.name): wrong result \(result), expected \(c.expected)"); failed = true; continue }
    var line = c.name.padding(toLength: 26, withPad: " ", startingAt: 0) + ms(t)
    if let (pt, presult) = timePython(c) {
      line += ms(pt) + String(format: "   %8.2fx", pt / t)
      if presult != c.expected { line += "  (python printed \(presult))" }
    } else {
      line += "   (python3 not available)"
    }
    print(line)
  } catch {
    print("  \(c.name): error: \(error)")
    failed = true
  }
}
do { try TensorBench.run(repeatCount: repeatCount, filter: filter) } catch { print("tensor bench: error: \(error)"); failed = true }
do { try TrainBench.run(filter: filter) } catch { print("train bench: error: \(error)"); failed = true }
do { try TechniqueBench.run(filter: filter) } catch { print("seedlm bench: error: \(error)"); failed = true }
do { try RunaheadBench.run(repeatCount: repeatOption ?? 1, filter: filter) } catch { print("runahead bench: error: \(error)"); failed = true }
do { try KVPredictBench.run(filter: filter) } catch { print("kvpredict bench: error: \(error)"); failed = true }
do { try SpecStreamBench.run(filter: filter) } catch { print("specstream bench: error: \(error)"); failed = true }
exit(failed ? 1 : 0)
