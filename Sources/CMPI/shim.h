// Open MPI for Swift: the predefined handles are macros taking the address of a global (MPI_COMM_WORLD is
// `&ompi_mpi_comm_world`), which Swift cannot import, so they are read through static inline accessors.
#ifndef LATHE_CMPI_SHIM_H
#define LATHE_CMPI_SHIM_H
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

static inline MPI_Comm lathe_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype lathe_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype lathe_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype lathe_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Status *lathe_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *lathe_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline void *lathe_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler lathe_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request lathe_mpi_request_null(void) { return MPI_REQUEST_NULL; }

#endif
