// The process engine on a few tokens (debug-build friendly): a killed worker is a thrown error naming it and its
// signal, and the next call works; the shared-memory folder is private and goes away with the pool. Debug builds
// run SmolLM2 at seconds a token, so scripts/test runs this suite in its release pass.

import Foundation
import Testing
import LatheModels
import LatheTensor
@testable import LatheParallel
import LatheTestSupport

@Suite(.serialized) struct WorkerPoolReleaseTests {
  @Test func aKilledWorkerIsAnErrorAndTheNextCallWorks() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(6)
    let pool = WorkerPool()
    defer { pool.shutdown() }
    let first = try model.parallelPrefill(prompt, method: .runahead, chunks: [3, 3], extra: 4, pool: pool)
    let pids = pool.workerPIDs
    try #require(pids.count == 2)
    #expect(kill(pids[1], SIGKILL) == 0)
    do {
      _ = try model.parallelPrefill(prompt, method: .runahead, chunks: [3, 3], extra: 4, pool: pool)
      Issue.record("a prefill with a killed worker succeeded")
    } catch let error as ParallelError {
      guard case .workerDied(let worker, let pid, let reason) = error else { Issue.record("unexpected error \(error)"); return }
      #expect(worker == 1 && pid == pids[1])
      #expect(reason.contains("SIGKILL"), "\(reason)")
      #expect("\(error)".contains("worker 1"))
    }
    #expect(pool.workerPIDs.isEmpty, "every worker of the failed run is gone")
    let again = try model.parallelPrefill(prompt, method: .runahead, chunks: [3, 3], extra: 4, pool: pool)
    #expect(again.firstToken == first.firstToken)
    #expect(Set(pool.workerPIDs).isDisjoint(with: pids))
  }

  /// Each worker runs under its share of this process's memory budget (LATHE_MEMORY_BUDGET in its environment), so
  /// the workers together cannot take more than the session may.
  @Test(arguments: [[3, 3], [2, 2, 2], [1, 2, 1, 2]])
  func eachWorkerHasItsShareOfTheMemoryBudget(chunks: [Int]) throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(6)
    let pool = WorkerPool()
    defer { pool.shutdown() }
    _ = try model.parallelPrefill(prompt, method: .runahead, chunks: chunks, extra: 4, pool: pool)
    let pids = pool.workerPIDs
    try #require(pids.count == chunks.count)
    let share = max(256 << 20, Memory.budget / chunks.count)
    for pid in pids {
      let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
      let entries = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
      #expect(entries.contains("LATHE_MEMORY_BUDGET=\(share)"), "worker \(pid): \(entries.filter { $0.hasPrefix("LATHE_") })")
    }
  }

  @Test func anInterruptStopsTheRunAndWorkersKeepOutOfTheTerminalsGroup() throws {
    struct Stop: Error {}
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(6)
    let pool = WorkerPool()
    defer { pool.shutdown() }
    _ = try model.parallelPrefill(prompt, method: .tsp, chunks: [3, 3], extra: 0, pool: pool)
    for pid in pool.workerPIDs { #expect(getpgid(pid) == pid, "worker \(pid) leads its own process group") }
    #expect(throws: Stop.self) {
      _ = try model.parallelPrefill(prompt, method: .tsp, chunks: [3, 3], extra: 0, pool: pool, interrupt: { throw Stop() })
    }
    #expect(pool.workerPIDs.isEmpty)
    #expect(try model.parallelPrefill(prompt, method: .tsp, chunks: [3, 3], extra: 0, pool: pool).cache.count == 6)
  }

  @Test func sharedMemoryIsPrivateAndRemovedAtShutdown() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(4)
    let pool = WorkerPool()
    _ = try model.parallelPrefill(prompt, method: .tsp, chunks: [2, 2], extra: 0, pool: pool)
    let folder = try #require(pool.sharedFolderPath)
    let attributes = try FileManager.default.attributesOfItem(atPath: folder)
    #expect((attributes[.posixPermissions] as? Int) == 0o700)
    let files = try FileManager.default.contentsOfDirectory(atPath: folder)
    #expect(!files.isEmpty)
    for name in files {
      let mode = try FileManager.default.attributesOfItem(atPath: "\(folder)/\(name)")[.posixPermissions] as? Int
      #expect(mode == 0o600, "\(name): \(String(mode ?? 0, radix: 8))")
    }
    let pids = pool.workerPIDs
    pool.shutdown()
    #expect(!FileManager.default.fileExists(atPath: folder))
    for pid in pids { #expect(kill(pid, 0) != 0, "worker \(pid) still runs after shutdown") }
  }

  @Test func theLatheCommandRemovesItsSharedMemoryAtExit() throws {
    let lathe = try WorkerProcess.executable()
    let dir = try TestPaths.temporaryDirectory("lathe-parallel")
    defer { try? FileManager.default.removeItem(at: dir) }
    let script = dir.appendingPathComponent("prefill.lathe").path
    try "let m = load(\"smollm2\")\nprint(prefill(m, [504, 2365, 6354, 16438], runahead(procs: 2)).first)\n"
      .write(toFile: script, atomically: true, encoding: .utf8)
    func folders() -> Set<String> {
      Set(((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("lathe-\(getuid())-") })
    }
    let before = folders()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: lathe)
    p.arguments = ["run", script, "--notebook", dir.appendingPathComponent("prefill.lnb").path]
    p.currentDirectoryURL = TestPaths.packageRoot
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    #expect(text.split(separator: "\n").contains { Int($0) != nil }, "the first token id: \(text)")
    let left = folders().subtracting(before).filter { $0.hasPrefix("lathe-\(getuid())-\(p.processIdentifier)") }
    #expect(left.isEmpty, "left behind: \(left)")
  }

  @Test func workersDieWithTheirParentAndItsFolderIsRemovedNextTime() throws {
    let lathe = try WorkerProcess.executable()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: lathe)
    p.arguments = ["repl", "--scratch"]
    p.currentDirectoryURL = TestPaths.packageRoot
    let input = Pipe()
    p.standardInput = input
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    input.fileHandleForWriting.write(Data("let m = load(\"smollm2\")\nprefill(m, [504, 2365, 6354, 16438], tsp(procs: 2))\n".utf8))
    /// The pids whose command line is `lathe worker --parent <parent>`.
    func workers(of parent: Int32) -> [Int32] {
      ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
        guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.count >= 4 && args[1] == "worker" && args[3] == String(parent) ? pid : nil
      }
    }
    // Wait until the first prefill has run: two workers and the parent's shared folder exist.
    let stale = "/dev/shm/lathe-\(getuid())-\(p.processIdentifier)"
    var found: [Int32] = []
    for _ in 0..<600 where found.count < 2 || !FileManager.default.fileExists(atPath: stale) {
      usleep(50_000); found = workers(of: p.processIdentifier)
    }
    #expect(found.count == 2, "the REPL started \(found.count) workers")
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    var alive = found
    for _ in 0..<100 where !alive.isEmpty {
      usleep(20_000)
      alive = alive.filter { pid in
        // Gone, or a zombie waiting for init to reap it.
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        return !String(decoding: stat, as: UTF8.self).contains(") Z ")
      }
    }
    #expect(alive.isEmpty, "workers \(alive) outlived their parent")
    // The killed parent's shared folder stays until the next process makes one.
    #expect(FileManager.default.fileExists(atPath: stale))
    let folder = try SharedFolder()
    folder.remove()
    #expect(!FileManager.default.fileExists(atPath: stale), "\(stale) was left behind")
  }

  @Test func badPlansAreErrorsNamingWhatIsWrong() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(4)
    func message(_ body: () throws -> Void) -> String {
      do { try body(); return "" } catch { return "\(error)" }
    }
    #expect(message { _ = try model.parallelPrefill(prompt, method: .runahead, chunks: [2, 1]) }.contains("sum to 3"))
    #expect(message { _ = try model.parallelPrefill(prompt, method: .runahead, chunks: [1, 1, 1, 1, 0]) }.contains("5 processes for a 4-token prompt"))
    #expect(message { _ = try model.parallelPrefill(prompt, method: .tsp, chunks: []) }.contains("procs must be at least 1"))
  }

  @Test func aModelWithoutAFileIsWrittenForTheWorkers() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(8)
    let pool = WorkerPool()
    defer { pool.shutdown() }
    let copy = try model.copy()
    #expect(copy.ggufPath == nil)
    let r = try copy.parallelPrefill(prompt, method: .runahead, chunks: [5, 3], extra: 0, pool: pool)
    let (cache, logits) = try model.prefill(prompt, extra: 0)
    #expect(maxCacheDifference(r.cache, cache, layers: model.config.layerCount) <= 1e-4)
    #expect(r.firstToken == Sampler.argmax(logits))
    let folder = try #require(pool.sharedFolderPath)
    let written = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".gguf") }
    #expect(written.count == 1)
    _ = try copy.parallelPrefill(prompt, method: .tsp, chunks: [4, 4], extra: 0, pool: pool)
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".gguf") } == written, "written once per model")
  }

  @Test func oneProcessIsTheSerialPrefill() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(5)
    let (cache, logits) = try model.prefill(prompt, extra: 0)
    let one = try model.parallelPrefill(prompt, method: .runahead, chunks: [5], extra: 0)
    #expect(one.logits == logits)
    #expect(maxCacheDifference(one.cache, cache, layers: model.config.layerCount) == 0)
    #expect(one.bytesSent == [0])
  }
}

/// The stale shared-memory cleanup removes only real folders of this user's, and inside them only their own
/// entries: a symlink planted in a stale folder's place, or inside one, leaves its target intact.
/// Where SharedFolder makes its folders: /dev/shm, else the temporary directory.
private let staleFolderBase = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm"
  : (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")

@Test func staleCleanupNeverFollowsAPlantedSymlink() throws {
  let victim = try TestPaths.temporaryDirectory("victim")
  defer { try? FileManager.default.removeItem(at: victim) }
  let precious = victim.appendingPathComponent("precious.txt")
  try Data("keep me".utf8).write(to: precious)
  let base = staleFolderBase
  let dead: Int32 = 2_147_483_000                                      // past any pid_max: no such process
  let planted = "\(base)/lathe-\(getuid())-\(dead)"                     // a symlink named like a stale folder
  let stale = "\(base)/lathe-\(getuid())-\(dead + 1)"                   // a real stale folder holding a symlink
  defer { unlink(planted); unlink(stale + "/link"); unlink(stale + "/region"); rmdir(stale) }
  #expect(symlink(victim.path, planted) == 0)
  #expect(mkdir(stale, 0o700) == 0)
  #expect(symlink(precious.path, stale + "/link") == 0)
  #expect(FileManager.default.createFile(atPath: stale + "/region", contents: Data([1, 2, 3])))
  SharedFolder.removeStale(in: base)
  #expect(FileManager.default.fileExists(atPath: precious.path), "the planted symlink's target lost its file")
  #expect(String(decoding: try Data(contentsOf: precious), as: UTF8.self) == "keep me")
  #expect(!FileManager.default.fileExists(atPath: stale), "the real stale folder is gone")
  var info = stat()
  #expect(lstat(planted, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK, "the planted link itself is left alone")
}

/// More planted shapes: a symlink to a file, a dangling symlink and a plain file, each named like a stale folder,
/// and a stale folder holding a subfolder (which Lathe never makes) with a symlink to a directory: no target loses
/// a byte, and the links and the file stay.
@Test func staleCleanupLeavesLinksFilesAndTheirTargetsAlone() throws {
  let victim = try TestPaths.temporaryDirectory("victim")
  defer { try? FileManager.default.removeItem(at: victim) }
  let precious = victim.appendingPathComponent("precious.txt")
  try Data("keep me".utf8).write(to: precious)
  let base = staleFolderBase
  let dead: Int32 = 2_147_483_100
  let toFile = "\(base)/lathe-\(getuid())-\(dead)", dangling = "\(base)/lathe-\(getuid())-\(dead + 1)"
  let plain = "\(base)/lathe-\(getuid())-\(dead + 2)", stale = "\(base)/lathe-\(getuid())-\(dead + 3)"
  defer {
    for path in [toFile, dangling, plain, stale + "/sub/link"] { unlink(path) }
    rmdir(stale + "/sub"); rmdir(stale)
  }
  #expect(symlink(precious.path, toFile) == 0)
  #expect(symlink(victim.path + "/missing", dangling) == 0)
  #expect(FileManager.default.createFile(atPath: plain, contents: Data("not a folder".utf8)))
  #expect(mkdir(stale, 0o700) == 0 && mkdir(stale + "/sub", 0o700) == 0)
  #expect(symlink(victim.path, stale + "/sub/link") == 0)
  SharedFolder.removeStale(in: base)
  #expect(String(decoding: try Data(contentsOf: precious), as: UTF8.self) == "keep me")
  #expect(try FileManager.default.contentsOfDirectory(atPath: victim.path) == ["precious.txt"])
  var info = stat()
  #expect(lstat(toFile, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK)
  #expect(lstat(dangling, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK)
  #expect(FileManager.default.contents(atPath: plain) == Data("not a folder".utf8))
}
