// `lathe-mpi`: one rank of a parallel prefill over Open MPI, started by mpirun (see MPILaunch); not for people.
//   mpirun -np 2 lathe-mpi --method runahead --chunks 40,24 --model m.gguf --tokens 1,2,...

import Foundation
import LatheMPI

exit(MPIPrefillRank.main(arguments: Array(CommandLine.arguments.dropFirst())))
