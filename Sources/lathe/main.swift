// The `lathe` command: a REPL by default, and run / rerun / show / export / check of notebooks.

import ArgumentParser
import Foundation
import LatheCLI
import LatheFuzzing
import LatheNotebook
import LatheParallel
import LatheTechniques

struct Lathe: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "A REPL and notebook scripting environment for research on efficient deep learning.",
    version: MachineEnvironment.versionText(),
    subcommands: [Repl.self, Run.self, Rerun.self, Show.self, Export.self, Check.self, Worker.self, FuzzReplay.self],
    defaultSubcommand: Repl.self)
}

struct Repl: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Interactive session recorded into a notebook.")
  @Argument(help: "Notebook to record into (default: lathe.lnb in the current directory).") var notebook: String?
  @Flag(help: "Open the notebook read-only (nothing is recorded; save() is refused).") var readOnly = false
  @Flag(help: "Record nothing: no notebook file.") var scratch = false
  @Option(help: "Random seed of the session.") var seed: UInt64 = 0

  func run() throws {
    var nb: Notebook? = nil
    if !scratch {
      do { nb = try Notebook.open(path: notebook ?? "lathe.lnb", readOnly: readOnly) }
      catch { FileHandle.standardError.write(Data("lathe: \(error)\n".utf8)); throw ExitCode(2) }
    }
    let session = try Session(notebook: nb, mode: .repl, seed: seed)
    let status = REPL(session: session).run()
    session.close()
    nb?.close()
    throw ExitCode(status)
  }
}

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Run a percent-format script (# %% cells) into a notebook.")
  @Argument(help: "The .lathe script.") var script: String
  @Option(help: "Notebook to record into (default: the script's path with .lnb).") var notebook: String?
  @Option(help: "Random seed of the session.") var seed: UInt64 = 0
  @Flag(help: "Run every cell even after an error.") var keepGoing = false

  func run() throws {
    throw ExitCode(Commands.run(script: script, notebook: notebook, seed: seed, keepGoing: keepGoing))
  }
}

struct Rerun: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a notebook's newest session (or --session N) again in a fresh interpreter with the same seed.")
  @Argument(help: "The notebook.") var notebook: String
  @Option(help: "This session id instead of the newest (lathe show --sessions lists them).") var session: Int64?
  @Flag(help: "Compare every output with the recorded one; exit 1 with a diff on a mismatch.") var check = false
  @Option(help: "Relative tolerance for floats.") var rtol = 1e-5
  @Option(help: "Absolute tolerance for floats.") var atol = 1e-6

  func run() throws {
    throw ExitCode(Commands.rerun(notebook: notebook, session: session, check: check, rtol: rtol, atol: atol))
  }
}

struct Show: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print a notebook's newest session (or one run) as text.")
  @Argument(help: "The notebook.") var notebook: String
  @Option(name: .customLong("run"), help: "Only this run id.") var runID: Int64?
  @Option(help: "This session id instead of the newest.") var session: Int64?
  @Flag(help: "Summarise each run's metrics: count, first, last, min and max of each series.") var metrics = false
  @Flag(name: .customLong("all"), help: "With --metrics: list every step of every series.") var allMetrics = false
  @Flag(help: "List the notebook's sessions (id, kind, start, seed, cells run, errors) instead.") var sessions = false

  func run() throws {
    throw ExitCode(Commands.show(notebook: notebook, run: runID, session: session, metrics: metrics,
                                 allMetrics: allMetrics, sessions: sessions))
  }
}

extension ExportFormat: ExpressibleByArgument {}

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Export a notebook's newest session.")
  @Argument(help: "The notebook.") var notebook: String
  @Option(name: .customLong("to"), help: "md, html, ipynb, script or text.") var format: ExportFormat
  @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?
  @Option(help: "This session id instead of the newest.") var session: Int64?

  func run() throws {
    throw ExitCode(Commands.export(notebook: notebook, format: format, output: output, session: session))
  }
}

struct Check: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Check a notebook: integrity, foreign keys, blob hashes.")
  @Argument(help: "The notebook.") var notebook: String

  func run() throws { throw ExitCode(Commands.check(notebook: notebook)) }
}

/// A parallel-prefill worker, started by the parent's worker pool with its control socket on fd 3; not for people.
struct Worker: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "A parallel-prefill worker process.", shouldDisplay: false)
  @Option(help: "The parent's process id: the worker exits when it is gone.") var parent: Int32

  func run() throws {
    throw ExitCode(ParallelWorker.run(fd: 3, parent: parent, formats: Techniques.formats))
  }
}

/// Replays fuzz inputs (the kept crash inputs of Tests/FuzzRegressions/<target>/) through a target's check, under the
/// fuzzer's budgets and its 10 s limit per input, in this process alone; for the tests and for whoever fixes a finding.
struct FuzzReplay: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "fuzz-replay", abstract: "Replay fuzz inputs through a fuzz target's check.",
                                                  shouldDisplay: false)
  @Argument(help: "The target: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")).") var target: String
  @Option(help: "Write the target's seed files into this folder first, and replay them too.") var seeds: String?
  @Argument(help: "Input files, or folders of them.") var paths: [String] = []

  func run() throws {
    guard let chosen = FuzzTarget(rawValue: target) else {
      FileHandle.standardError.write(Data("lathe fuzz-replay: no target '\(target)'\n".utf8))
      throw ExitCode(2)
    }
    if let seeds {
      do { try chosen.writeSeeds(into: seeds) } catch {
        FileHandle.standardError.write(Data("lathe fuzz-replay: cannot write the seeds into \(seeds): \(error)\n".utf8))
        throw ExitCode(2)
      }
    }
    throw ExitCode(FuzzReplayer.replay(chosen, paths: (seeds.map { [$0] } ?? []) + paths))
  }
}

Lathe.main()
