// Linux process calls Swift cannot make directly: prctl is variadic, and posix_spawn's closefrom action is a
// glibc extension (2.34) the Glibc module does not declare.
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>

/// The calling process receives `sig` when the thread that created it exits.
static inline int lathe_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }

/// Adds "close every descriptor >= lowest" to a spawn's file actions.
static inline int lathe_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int lowest) {
  return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
