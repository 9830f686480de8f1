// swift-tools-version:6.1
// Lathe: a REPL and notebook scripting environment for research on efficient deep learning.
import PackageDescription
import Foundation

let env = ProcessInfo.processInfo.environment
// Built for the machine that builds it, as llama.cpp's GGML_NATIVE is (AVX-512 where the CPU has it: the Q4_1
// matrix-vector kernel runs 58 µs instead of 69 on 1536×576 on the Zen 4 machines here). LATHE_CPU=haswell gives
// the x86-64-v3 class baseline (AVX2, FMA, F16C; the frontend rejects "x86-64-v3") for binaries that must run on
// other machines.
let cpu = env["LATHE_CPU"] ?? "native"
// Every Lathe target is built for the chosen CPU. The interpreter is class-field heavy: dynamic exclusivity checks
// cost it 2x (measured: 152 → 63 ns per loop iteration). Kernel targets add -cross-module-optimization, which
// inlines their loops into callers in other modules (measured: 8x on a subscript loop).
let cpuSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", cpu])]
let kernelSettings: [SwiftSetting] = cpuSettings + [
  .unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release)),
]
let interpreterSettings: [SwiftSetting] = cpuSettings + [
  .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

var targets: [Target] = [
  .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
  .systemLibrary(name: "CReadline", providers: [.apt(["libreadline-dev"])]),
  .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
  .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
  .systemLibrary(name: "CLinux"),
  .systemLibrary(name: "CPrefetch"),
  .target(name: "LatheTensor", dependencies: ["CBLAS", "CPrefetch"], swiftSettings: kernelSettings),
  .target(name: "LatheNN", dependencies: ["LatheTensor"], swiftSettings: kernelSettings),
  .target(name: "LatheData", dependencies: ["LatheTensor", "CZlib"], swiftSettings: kernelSettings),
  .target(name: "LatheModels", dependencies: ["LatheTensor", "LatheNN"], swiftSettings: kernelSettings),
  .target(name: "LatheParallel", dependencies: ["LatheTensor", "LatheModels", "CLinux"], swiftSettings: kernelSettings),
  .target(name: "LatheTechniques", dependencies: ["LatheTensor", "LatheNN", "LatheModels", "LatheParallel", "CBLAS"], swiftSettings: kernelSettings),
  .target(name: "LatheLang", swiftSettings: interpreterSettings),
  .target(name: "LatheBuiltins", dependencies: ["LatheLang", "LatheTensor", "LatheNN", "LatheData", "LatheModels", "LatheTechniques",
                                          "LatheParallel"],
          swiftSettings: interpreterSettings),
  .target(name: "LatheNotebook", dependencies: ["CSQLite", "LatheLang"], swiftSettings: cpuSettings),
  .target(name: "LatheCLI", dependencies: ["LatheLang", "LatheBuiltins", "LatheModels", "LatheNotebook", "CReadline", "CBLAS"],
          swiftSettings: interpreterSettings),
  // The checks behind every fuzz target (scripts/fuzz), in a library so that `lathe fuzz-replay` replays kept inputs
  // under the fuzzer's own limits in a process of its own.
  .target(name: "LatheFuzzing", dependencies: ["LatheLang", "LatheBuiltins", "LatheTensor", "LatheData", "LatheModels",
                                               "LatheNotebook", "LatheParallel", "LatheTechniques"],
          swiftSettings: interpreterSettings),
  .executableTarget(name: "lathe", dependencies: [
    "LatheCLI", "LatheParallel", "LatheTechniques", "LatheFuzzing", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
  .executableTarget(name: "lathe-bench", dependencies: ["LatheLang", "LatheTensor", "LatheNN", "LatheData", "LatheModels", "CBLAS", "LatheTechniques",
                                                      "LatheParallel"],
                    swiftSettings: interpreterSettings),
  .target(name: "LatheTestSupport", dependencies: ["LatheLang"], path: "Tests/LatheTestSupport"),
  .testTarget(name: "LatheLangTests", dependencies: ["LatheLang", "LatheTestSupport"],
              resources: [.copy("Scripts")]),
  .testTarget(name: "LatheTensorTests", dependencies: ["LatheTensor"]),
  .testTarget(name: "LatheNNTests", dependencies: ["LatheNN", "LatheTensor"]),
  .testTarget(name: "LatheModelsTests", dependencies: ["LatheModels", "LatheTensor", "LatheTestSupport", "LatheNotebook"]),
  .testTarget(name: "LatheTechniquesTests", dependencies: ["LatheTechniques", "LatheNN", "LatheModels", "LatheTensor", "LatheTestSupport"]),
  .testTarget(name: "LatheParallelTests", dependencies: ["LatheParallel", "LatheModels", "LatheTensor", "LatheTestSupport"]),
  .testTarget(name: "LatheDataTests", dependencies: ["LatheData", "LatheTensor", "LatheTestSupport"]),
  .testTarget(name: "LatheBuiltinsTests", dependencies: ["LatheBuiltins", "LatheLang", "LatheModels", "LatheTechniques", "LatheTestSupport"],
              resources: [.copy("Scripts")]),
  // A SQLite VFS that fails writes and syncs or loses power on cue, for the notebook's fault tests.
  .target(name: "CFaultVFS", dependencies: ["CSQLite"], path: "Tests/CFaultVFS"),
  .testTarget(name: "LatheNotebookTests", dependencies: ["LatheNotebook", "LatheLang", "LatheTestSupport", "CFaultVFS"]),
  .testTarget(name: "LatheFuzzingTests", dependencies: ["LatheFuzzing", "LatheParallel", "LatheModels", "LatheNotebook",
                                                      "LatheTechniques", "LatheData"]),
  .testTarget(name: "LatheCLITests", dependencies: ["LatheCLI", "LatheNotebook", "LatheTestSupport"]),
]
// libFuzzer supplies main(), so this target cannot link in a plain `swift build`: it is declared on request only.
//   LATHE_FUZZ=1 swift build -c release --sanitize=fuzzer --product lathe-fuzz
if env["LATHE_FUZZ"] == "1" {
  targets.append(.executableTarget(name: "lathe-fuzz", dependencies: ["LatheFuzzing"],
                                   swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
// The Open MPI transport of parallel prefill (ranks on several machines) needs libmpi, so it is declared on request
// only, like lathe-fuzz: the default build needs no MPI. It adds targets and leaves every other target's flags
// alone, so switching it on in a built folder compiles only these (a package trait defines its condition in every
// target and rebuilds them all).
// Its tests (MPIPrefillReleaseTests in LatheParallelTests) run when LATHE_MPI=1 is set for swift test too.
//   LATHE_MPI=1 swift build --build-tests          LATHE_MPI=1 swift test --skip-build --filter MPIPrefill
if env["LATHE_MPI"] == "1" {
  targets += [
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    .target(name: "LatheMPI", dependencies: ["CMPI", "LatheParallel", "LatheModels", "LatheTechniques"], swiftSettings: cpuSettings),
    .executableTarget(name: "lathe-mpi", dependencies: ["LatheMPI"], swiftSettings: cpuSettings),
  ]
}

let package = Package(
  name: "Lathe",
  products: [
    .executable(name: "lathe", targets: ["lathe"]),
    .executable(name: "lathe-bench", targets: ["lathe-bench"]),
  ],
  dependencies: [.package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")],
  targets: targets,
  swiftLanguageModes: [.v5]
)
